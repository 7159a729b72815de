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


def _start(path: Path, output: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainer", "train", str(path), "--output-dir", str(output), "--name", "cut"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


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
    assert got["epoch"] == expected["epoch"] == 3
    for part in ("model", "ema"):
        assert expected[part].keys() == got[part].keys()
        for key in expected[part]:
            torch.testing.assert_close(got[part][key], expected[part][key], rtol=0, atol=0, msg=f"{part}.{key}")


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_resume_equals_uninterrupted(tmp_path, write_recipe, stop):
    path = write_recipe(_recipe())
    full = train(recipes=[str(path)], overrides=[], output_dir=str(tmp_path / "runs"), name="full")
    process = _start(path, tmp_path / "runs")
    run_dir = tmp_path / "runs" / "cut"
    _wait_for_epochs(run_dir, 1, process)
    process.send_signal(stop)
    output = process.communicate(timeout=120)[0]
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert checkpoint["epoch"] < 3, "the run finished before the signal arrived"
    if stop == signal.SIGTERM:
        assert process.returncode == 1
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
