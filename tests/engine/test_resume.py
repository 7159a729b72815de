"""A run stopped part-way (SIGTERM: finish the step, save, exit; SIGKILL: lose everything since the
last checkpoint) and resumed with --resume ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import ROOT, tiny_classification_recipe
from trainer.commands.train import train
from trainer.engine.checkpoint import load_checkpoint


def _recipe() -> dict:
    recipe = tiny_classification_recipe()
    recipe["data"]["train"]["num_images"] = 96
    recipe["training"].update(epochs=3, ema={"enabled": True, "warmup_steps": 2})
    recipe["augmentation"]["mix"] = {"mixup_alpha": 0.2}
    recipe["logging"]["log_every"] = 1
    return recipe


def _start(path: Path, output: Path, *overrides: str, own_group: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainer", "train", str(path), *overrides, "--output-dir", str(output),
               "--name", "cut"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=own_group)


def _wait_for_epochs(run_dir: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        csv_path = run_dir / "metrics.csv"
        if csv_path.exists() and len(list(csv.DictReader(open(csv_path)))) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run did not finish {count} epoch(s): {process.communicate()[0]}")


def _assert_same_weights(expected_run: Path, got_run: Path) -> None:
    expected = load_checkpoint(expected_run / "checkpoints" / "last.pt")
    got = load_checkpoint(got_run / "checkpoints" / "last.pt")
    assert got["counters"]["epoch"] == expected["counters"]["epoch"] == 3
    for part in ("model", "ema"):
        assert expected[part].keys() == got[part].keys()
        for key in expected[part]:
            torch.testing.assert_close(got[part][key], expected[part][key], rtol=0, atol=0, msg=f"{part}.{key}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    """The recipe and its run trained without a stop (in this process, no DataLoader workers)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(_recipe(), sort_keys=False))
    return path, train(recipes=[str(path)], overrides=[], output_dir=str(folder / "runs"), name="full")


@pytest.mark.slow
@pytest.mark.parametrize("stop, to_group", [(signal.SIGTERM, False), (signal.SIGKILL, False), (signal.SIGTERM, True)],
                         ids=["sigterm", "sigkill", "sigterm-to-the-process-group"])
def test_resume_equals_uninterrupted(tmp_path, uninterrupted, stop, to_group):
    """The group case is Slurm's scancel or `kill -- -PGID`: the DataLoader worker gets the signal too
    (and ignores it), the main process stops in order."""
    path, full = uninterrupted
    workers = ["environment.num_workers=1"] if to_group else []
    process = _start(path, tmp_path / "runs", *workers, own_group=to_group)
    run_dir = tmp_path / "runs" / "cut"
    _wait_for_epochs(run_dir, 1, process)
    if to_group:
        os.killpg(process.pid, stop)
    else:
        process.send_signal(stop)
    output = process.communicate(timeout=120)[0]
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert checkpoint["counters"]["epoch"] < 3, "the run finished before the signal arrived"
    if stop == signal.SIGTERM:
        assert process.returncode == 1, output
        assert "Traceback" not in output and "killed by signal" not in output, output
        assert f"trainer train --resume {run_dir}" in " ".join(output.split())
    resumed = train(recipes=[], overrides=[], resume=str(run_dir))
    assert resumed == run_dir
    _assert_same_weights(full, resumed)


def test_resume_refuses_another_recipe(tmp_path, write_recipe, cli):
    path = write_recipe(tiny_classification_recipe())
    run = train(recipes=[str(path)], overrides=["training.epochs=1"], output_dir=str(tmp_path / "runs"), name="r")
    result = cli("train", path, "training.batch_size=4", "--resume", run)
    assert result.exit_code == 2
    assert "another recipe" in result.output and "training.batch_size" in result.output
