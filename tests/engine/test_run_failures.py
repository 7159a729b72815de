"""Every failure during a run ends with exit code 1 and one message: what happened (in words),
where, which checkpoint was kept and the resume command; the run then resumes."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_classification_recipe
from trainer.engine.checkpoint import load_checkpoint
from trainer.engine.stop_signal import StopSignal

PLUGINS = ["tests.engine.fault_plugins"]


def _recipe(*, data_format: str = "shapes") -> dict:
    recipe = tiny_classification_recipe()  # 16 training images in batches of 8: 2 steps per epoch
    recipe["imports"] = PLUGINS
    recipe["data"]["format"] = data_format
    recipe["data"]["train"]["num_images"] = 16
    recipe["data"]["val"]["num_images"] = 8
    recipe["training"]["epochs"] = 2
    return recipe


def _train(cli, tmp_path, path):
    result = cli("train", path, "--output-dir", tmp_path / "runs", "--name", "r")
    return result, tmp_path / "runs" / "r"


def _message(result) -> str:
    return " ".join(result.output.split())


def _kept_after_epoch_1(run) -> str:
    return (f"the last good checkpoint is kept: {run / 'checkpoints' / 'last.pt'} (after epoch 1); "
            f"resume with: trainer train --resume {run}")


def _kept(run) -> int:
    """The epochs done in the kept last.pt."""
    return load_checkpoint(run / "checkpoints" / "last.pt")["counters"]["epoch"]


def test_an_exception_raised_by_a_loss(tmp_path, write_recipe, cli):
    recipe = _recipe()
    recipe["model"]["losses"] = [{"criterion": "fault_loss", "fail_at": 3}]
    result, run = _train(cli, tmp_path, write_recipe(recipe))
    assert result.exit_code == 1
    assert (f"run stopped: ValueError: the loss failed on purpose at call 3 during training epoch 2, step 1; "
            f"{_kept_after_epoch_1(run)}") in _message(result)
    assert "Traceback" not in result.output
    assert _kept(run) == 1


def test_disk_full_while_writing_a_checkpoint(tmp_path, write_recipe, cli):
    recipe = _recipe()  # from epoch 2 on, the checkpoint is written to /dev/full (ENOSPC, as a full disk)
    checkpoints = tmp_path / "runs" / "r" / "checkpoints"
    recipe["model"]["losses"] = [{"criterion": "fault_loss", "disk_full_at": 3, "checkpoints": str(checkpoints)}]
    result, run = _train(cli, tmp_path, write_recipe(recipe))
    assert result.exit_code == 1
    assert (f"run stopped: disk full (No space left on device) while writing {run / 'checkpoints' / 'last.pt'}; "
            f"{_kept_after_epoch_1(run)}") in _message(result)
    assert "unexpected pos" not in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # no temp file
    assert _kept(run) == 1


@pytest.mark.parametrize("phase", ["training", "validation"])
def test_a_second_signal_stops_at_once_in_order(tmp_path, write_recipe, cli, monkeypatch, phase):
    monkeypatch.setattr(StopSignal, "repeat_window", 0.0)  # the two signals come at once
    recipe = _recipe(data_format="signalling_shapes")
    if phase == "training":  # the first step of epoch 2 (call 3 of the loss)
        recipe["model"]["losses"] = [{"criterion": "fault_loss", "signal_at": 3}]
        where = "training epoch 2, step 1"
    else:  # the last sample of the second validation
        recipe["data"]["val"].update(signal_index=7, signal_round=2)
        where = "validation after epoch 2"
    result, run = _train(cli, tmp_path, write_recipe(recipe))
    assert result.exit_code == 1, result.output
    assert f"run stopped: stopped at once by a second SIGTERM during {where}; {_kept_after_epoch_1(run)}" in (
        _message(result))
    assert "Traceback" not in result.output
    assert _kept(run) == 1
