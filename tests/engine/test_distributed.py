"""Training under torch.distributed (2 CPU processes, gloo, started by `trainer train --nproc 2`):
the same global batches, weights and metrics as one process with a twice larger batch.

BatchNorm statistics are per rank (SyncBatchNorm has no CPU kernel), so the comparison freezes the
whole backbone (`frozen_stages: 4`: its BatchNorm layers stay in eval mode) and trains the BN-free
`fc` head: its gradients, and so the weights, must agree up to float summation order.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from tests.conftest import ROOT, tiny_classification_recipe
from trainer.commands.launch import strip_nproc, torchrun_arguments
from trainer.commands.train import train
from trainer.data.loaders import EpochTaggedSampler
from trainer.engine.checkpoint import load_checkpoint
from trainer.engine.distributed import parameters_without_grad


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared machine: one thread is faster than several fighting over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _recipe(batch_size: int) -> dict:
    recipe = tiny_classification_recipe()
    recipe["data"]["train"]["num_images"] = 16
    recipe["data"]["val"]["num_images"] = 15  # odd: two ranks must not count an image twice
    recipe["model"]["architecture"]["backbone"] = {"name": "resnet18", "frozen_stages": 4}
    recipe["training"].update(
        epochs=1, batch_size=batch_size, optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.9},
        scheduler={"name": "constant"},
    )
    recipe["logging"]["log_every"] = 1
    return recipe


def _rows(run) -> list[dict]:
    return list(csv.DictReader(open(run / "metrics.csv")))


def test_two_processes_equal_one_process_with_the_global_batch(tmp_path, write_recipe):
    one = train(recipes=[str(write_recipe(_recipe(8), "one.yaml"))], overrides=[],
                output_dir=str(tmp_path / "runs"), name="one")
    two_recipe = write_recipe(_recipe(4), "two.yaml")
    command = [sys.executable, "-m", "trainer", "train", str(two_recipe), "--nproc", "2",
               "--output-dir", str(tmp_path / "runs"), "--name", "two"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one", "two"]  # one run dir, from rank 0
    two = tmp_path / "runs" / "two"
    assert "2 process(es)" in (two / "train.log").read_text()
    assert (two / "checkpoints" / "last.pt").is_file() and (two / "recipe.yaml").is_file()

    expected, got = load_checkpoint(one / "checkpoints" / "last.pt"), load_checkpoint(two / "checkpoints" / "last.pt")
    assert expected["counters"]["global_step"] == got["counters"]["global_step"] == 2
    trained = [key for key in expected["model"] if key.startswith("head.")]
    assert trained
    for key, value in expected["model"].items():
        torch.testing.assert_close(got["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    # the momentum buffers hold the (all-reduced) gradients: non-zero, and the same
    buffers = [(e["momentum_buffer"], g["momentum_buffer"])
               for e, g in zip(expected["optimizer"]["state"].values(), got["optimizer"]["state"].values())]
    assert len(buffers) == len(trained) and all(e.abs().sum() > 0 for e, _ in buffers)
    for e, g in buffers:
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    # train loss: the mean over both ranks; val metrics: reduced over ranks, no image counted twice
    (row_one,), (row_two,) = _rows(one), _rows(two)
    assert float(row_two["train/total"]) == pytest.approx(float(row_one["train/total"]), rel=1e-4)
    assert row_two["val/top1"] == row_one["val/top1"] and row_two["val/top5"] == row_one["val/top5"]


def test_global_batches_do_not_depend_on_the_number_of_processes():
    def batches(world: int, rank: int, batch: int, pad: bool) -> list[list[int]]:
        sampler = EpochTaggedSampler(size=13, shuffle=True, seed=3, distributed=False, pad=pad)
        sampler.world, sampler.rank = world, rank
        sampler.set_epoch(2)
        indices = [index for _, index in sampler]
        assert len(indices) == len(sampler)
        return [indices[i:i + batch] for i in range(0, len(indices), batch)]

    single = batches(1, 0, 4, pad=True)
    ranks = [batches(2, r, 2, pad=True) for r in range(2)]
    for k in range(len(single) - 1):  # every full global batch is the same set of samples
        assert sorted(ranks[0][k] + ranks[1][k]) == sorted(single[k])
    assert len(ranks[0]) == len(ranks[1])  # training pads: the same number of steps on every rank
    evaluation = [i for r in range(2) for b in batches(2, r, 2, pad=False) for i in b]
    assert sorted(evaluation) == list(range(13))  # evaluation: every image once


def test_parameters_without_grad_finds_outputs_no_loss_reads():
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
            self.used, self.unused = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x):
            h = self.body(x)
            return {"a": self.used(h), "b": self.unused(h)}

    model = TwoHeads()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 4)
    assert parameters_without_grad(model, lambda m: m(x)["a"].sum()) == ["unused.weight", "unused.bias"]
    assert parameters_without_grad(model, lambda m: sum(v.sum() for v in m(x).values())) == []
    for key, value in model.state_dict().items():  # BatchNorm statistics restored, no .grad left
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())


def test_launch_arguments():
    argv = ["--debug", "train", "r.yaml", "--nproc", "4", "training.epochs=3", "--nproc=2", "--name", "x"]
    assert strip_nproc(argv) == ["--debug", "train", "r.yaml", "training.epochs=3", "--name", "x"]
    assert torchrun_arguments(4, ["train", "r.yaml", "--nproc", "4"]) == [
        "--standalone", "--nproc-per-node", "4", "-m", "trainer", "train", "r.yaml"]


def test_nproc_with_a_bad_recipe_fails_once_before_starting_workers(tmp_path, write_recipe, cli):
    recipe = _recipe(4)
    recipe["training"]["epoch"] = 2
    result = cli("train", write_recipe(recipe), "--nproc", "2", "--output-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.output.count("training.epoch") == 1 and "did you mean 'epochs'" in result.output
    assert "launching" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
