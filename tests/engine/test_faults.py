"""Faults and safety: a non-finite loss stops the run (exit 1) and keeps the last good checkpoint;
checkpoint writes are atomic; a finished run trains longer only when asked; early stopping; a
launcher's copy of a signal does not cancel the orderly stop; checkpoints load with
weights_only=True; YAML never builds Python objects; code is imported only from `imports:`; a run
directory is never overwritten."""

from __future__ import annotations

import ast
import csv
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

import trainer
from tests.conftest import ROOT, tiny_classification_recipe
from trainer.commands.train import train
from trainer.engine import checkpoint as checkpoint_module
from trainer.engine.checkpoint import load_checkpoint, save_checkpoint
from trainer.engine.epoch import weights_finite
from trainer.engine.failures import Interrupted
from trainer.engine.run_dir import create_run_dir
from trainer.engine.stop_signal import StopSignal


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared machine: one thread is faster than several fighting over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _small(**training) -> dict:
    recipe = tiny_classification_recipe()
    recipe["data"]["train"]["num_images"] = 16
    recipe["data"]["val"]["num_images"] = 8
    recipe["training"].update(training)
    recipe["logging"]["log_every"] = 1
    return recipe


def _rows(run: Path) -> list[dict]:
    return list(csv.DictReader(open(run / "metrics.csv")))


def _env(*paths: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, paths)]), "OMP_NUM_THREADS": "1"}


NAN_LOSS = textwrap.dedent('''
    import torch
    from torch import nn
    from trainer.registry import LOSSES

    CALLS = [0]


    @LOSSES.register("nan_after_loss", heads={"classification": ("fc",)})
    class NanAfterLoss(nn.Module):
        """Cross entropy that turns NaN after `after` calls (a test fault)."""

        def __init__(self, *, after: int = 3) -> None:
            super().__init__()
            self.after = after

        def forward(self, *, logits, labels):
            CALLS[0] += 1
            ce = nn.functional.cross_entropy(logits, labels)
            return {"ce": ce * float("nan") if CALLS[0] > self.after else ce}
''')


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, write_recipe):
    (tmp_path / "nan_after_plugin.py").write_text(NAN_LOSS)
    recipe = _small(epochs=3, batch_size=8)  # 2 steps per epoch: NaN from epoch 2, step 2 (call 4)
    recipe["imports"] = ["nan_after_plugin"]
    recipe["model"]["losses"] = [{"criterion": "nan_after_loss", "after": 3}]
    command = [sys.executable, "-m", "trainer", "train", str(write_recipe(recipe)), "--output-dir",
               str(tmp_path / "runs"), "--name", "nan"]
    result = subprocess.run(command, capture_output=True, text=True, env=_env(tmp_path), timeout=300, check=False)
    run = tmp_path / "runs" / "nan"
    message = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "non-finite loss at epoch 2, step 2" in message
    assert "nan_after_loss/ce=nan" in message and "total=nan" in message  # the loss parts
    assert f"last good checkpoint is kept: {run / 'checkpoints' / 'last.pt'} (after epoch 1)" in message
    assert "Traceback" not in result.stdout + result.stderr
    kept = load_checkpoint(run / "checkpoints" / "last.pt")
    assert kept["counters"]["epoch"] == 1 and kept["counters"]["step_in_epoch"] == 0
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())
    assert len(_rows(run)) == 1


def testweights_finite():
    model = torch.nn.Linear(3, 2)
    assert weights_finite(model)
    with torch.no_grad():
        model.bias[1] = float("inf")
    assert not weights_finite(model)


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def save_half_then_fail(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 partial")  # a torn write, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", save_half_then_fail)
    with pytest.raises(OSError):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    kept = load_checkpoint(path)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind


def test_a_process_killed_while_saving_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    script = textwrap.dedent(f'''
        import sys, time, torch
        from pathlib import Path
        from trainer.engine import checkpoint

        def slow_save(obj, handle, *args, **kwargs):
            handle.write(b"PK\\x03\\x04" + b"x" * 1000)
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)

        checkpoint.torch.save = slow_save
        checkpoint.save_checkpoint({{"epoch": 2, "w": torch.zeros(3)}}, Path({str(path)!r}))
    ''')
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert process.stdout.readline().strip() == "writing"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    kept = load_checkpoint(path)
    assert kept["epoch"] == 1 and torch.equal(kept["w"], torch.ones(3))


def test_a_finished_run_trains_longer_only_when_asked(tmp_path, write_recipe, cli):
    path = write_recipe(_small(epochs=2, batch_size=8, scheduler={"name": "cosine", "warmup_epochs": 0}))
    run = train(recipes=[str(path)], overrides=[], output_dir=str(tmp_path / "runs"), name="r")
    assert load_checkpoint(run / "checkpoints" / "last.pt")["counters"]["epoch"] == 2
    result = cli("train", "--resume", run)  # nothing asked: nothing to do, nothing touched
    assert result.exit_code == 2
    assert "already trained 2 of 2 epochs" in result.output and "training.epochs=3" in result.output
    result = cli("train", "--resume", run, "training.epochs=1")
    assert result.exit_code == 2 and "already trained 2 of 1 epochs" in result.output

    result = cli("train", "--resume", run, "training.epochs=4")
    assert result.exit_code == 0, result.output
    assert "training.epochs changed from 2 to 4" in result.output
    rows = _rows(run)
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    lrs = [float(row["lr"]) for row in rows]
    # the cosine now spans 4 epochs: epoch 2 ended at the old schedule's end (lr 0); then the new
    # schedule continues from its half-way point down to 0, never back up
    assert lrs[1] == pytest.approx(0.0, abs=1e-9)
    assert lrs[2] == pytest.approx(0.02 * (1 + math.cos(math.pi * 3 / 4)) / 2, rel=1e-6)
    assert lrs[3] == pytest.approx(0.0, abs=1e-9)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["counters"]["epoch"] == 4
    assert yaml.safe_load((run / "recipe.yaml").read_text())["training"]["epochs"] == 4


def test_early_stopping_after_patience_validations_without_improvement(tmp_path, write_recipe):
    # min_delta 1.0: top1 (a fraction) can never improve by that much after the first validation
    path = write_recipe(_small(epochs=6, batch_size=8, early_stopping={"patience": 2, "min_delta": 1.0}))
    run = train(recipes=[str(path)], overrides=[], output_dir=str(tmp_path / "runs"), name="es")
    assert [row["epoch"] for row in _rows(run)] == ["1", "2", "3"]
    assert "early stopping: top1 did not improve for 2 validations" in (run / "train.log").read_text()
    assert load_checkpoint(run / "checkpoints" / "best.pt")["counters"]["epoch"] == 1
    assert load_checkpoint(run / "checkpoints" / "last.pt")["counters"]["epoch"] == 3


def test_a_forwarded_copy_of_a_signal_does_not_cancel_the_orderly_stop(monkeypatch):
    monkeypatch.setattr(StopSignal, "repeat_window", 0.5)
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)  # torchrun passing the same on
        assert stop.received == signal.SIGINT
        time.sleep(0.6)
        stop.phase = "validation after epoch 2"
        with pytest.raises(Interrupted, match="second SIGTERM during validation after epoch 2; no checkpoint"):
            os.kill(os.getpid(), signal.SIGTERM)  # a later one: stop at once
            time.sleep(0.1)


# ---- safety ---------------------------------------------------------------------------------------


def test_every_torch_load_in_the_package_is_weights_only():
    calls = 0
    for path in Path(trainer.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                calls += 1
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                assert weights_only and ast.unparse(weights_only[0].value) == "True", f"{path}:{node.lineno}"
            if isinstance(node, ast.Attribute) and node.attr in ("unsafe_load", "full_load", "UnsafeLoader"):
                raise AssertionError(f"{path}:{node.lineno}: yaml.{node.attr}")
    assert calls, "no torch.load found: the check looks at nothing"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # would create the file if unpickled


def test_a_checkpoint_with_code_in_it_is_refused(tmp_path, write_recipe, cli):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Payload(marker)}, evil)
    result = cli("eval", write_recipe(_small()), "--checkpoint", evil)
    assert result.exit_code == 2
    assert "cannot read checkpoint" in result.output and str(evil) in result.output
    assert "Traceback" not in result.output
    assert not marker.exists()


def test_yaml_python_tags_are_refused(tmp_path, cli):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    recipe = yaml.safe_dump(_small(), sort_keys=False)
    path.write_text(f"{recipe}\nextra: !!python/object/apply:builtins.open [{str(marker)!r}, w]\n")
    result = cli("show", path)
    assert result.exit_code == 2
    assert "invalid YAML" in result.output and f"{path}:" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_component_names_never_import_code(tmp_path, write_recipe, cli, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "sneaky_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in ("model.architecture.backbone.name", "data.format", "model.losses.0.criterion",
                "training.optimizer.name", "augmentation.train.0.name"):
        result = cli("check", write_recipe(_small()), f"{key}=sneaky_module")
        assert result.exit_code == 2, (key, result.output)
        assert "unknown" in result.output and "sneaky_module" in result.output
        assert not marker.exists(), key
    sys.modules.pop("sneaky_module", None)


def test_a_run_directory_is_never_overwritten(tmp_path):
    first, note = create_run_dir(output_dir=tmp_path, name="run")
    assert note is None
    (first / "recipe.yaml").write_text("keep me")
    second, note = create_run_dir(output_dir=tmp_path, name="run")
    third, _ = create_run_dir(output_dir=tmp_path, name="run")
    assert (second.name, third.name) == ("run-2", "run-3")
    assert note == f"{first} exists; this run writes to {second}"
    assert (first / "recipe.yaml").read_text() == "keep me"
