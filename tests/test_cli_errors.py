"""The one error policy at the top of the command line: bad input exit 2, a stopped run exit 1 with
"run stopped: ...", anything else exit 1 with its type and message in words; no traceback unless
--debug; no ANSI escape codes in messages."""

from __future__ import annotations

import errno
import textwrap

import pytest
import yaml

from tests.conftest import tiny_classification_recipe
from trainer.cli import error_message
from trainer.data.errors import DataError
from trainer.engine.checkpoint import CheckpointError
from trainer.engine.device import DeviceError
from trainer.engine.failures import Interrupted, NonFiniteLossError, RunFailure, WriteFailure
from trainer.files import FileReadError
from trainer.recipe import RecipeError, RecipeIssue
from trainer.registry import UnknownNameError


@pytest.mark.parametrize("error", [
    RecipeError([RecipeIssue(("training", "epochs"), "must be >= 1, got 0", where="r.yaml:3:3")]),
    DataError("images/a.png: cannot read image"),
    FileReadError("r.yaml", "not UTF-8 text", line=2),
    CheckpointError("last.pt: cannot read checkpoint"),
    DeviceError("device 'cuda' was asked for, but CUDA is not available on this machine"),
    UnknownNameError(kind="criterion", name="focal", choices=["focal_loss"]),
    FileNotFoundError(errno.ENOENT, "No such file or directory", "nowhere.yaml"),
], ids=lambda error: type(error).__name__)
def test_bad_input_is_exit_2_with_its_message(error):
    message, code = error_message(error)
    assert code == 2
    assert message.startswith(("error: ", "recipe error: ")) and str(error).split(": ")[-1] in message


@pytest.mark.parametrize("error", [RunFailure("x"), NonFiniteLossError("x"), Interrupted("x"), WriteFailure("x")],
                         ids=lambda error: type(error).__name__)
def test_a_stopped_run_is_exit_1(error):
    error.args = ("loss is NaN at epoch 2; checkpoints/last.pt (epoch 1) is kept; resume: trainer train --resume r",)
    assert error_message(error) == (f"run stopped: {error.args[0]}", 1)


def test_disk_full_is_called_disk_full():
    message, code = error_message(OSError(errno.ENOSPC, "No space left on device", "export/best.onnx"))
    assert (message, code) == ("error: disk full (No space left on device) while writing export/best.onnx", 1)


def test_anything_else_is_exit_1_in_words():
    assert error_message(ZeroDivisionError("division by zero")) == (
        "error: unexpected ZeroDivisionError: division by zero (run with --debug for the traceback)", 1)
    assert error_message(MemoryError())[1] == 1 and "out of memory" in error_message(MemoryError())[0]


def test_ansi_escape_codes_are_removed():
    refused = CheckpointError("cannot read checkpoint x.pt: \x1b[1mWeightsUnpickler error:\x1b[0m Unsupported global")
    message, _ = error_message(refused)
    assert "\x1b" not in message and "WeightsUnpickler error: Unsupported global" in message


def test_a_data_loader_worker_traceback_is_cut_to_its_last_line():
    error = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                      '  File "x.py", line 3, in f\ntrainer.data.errors.DataError: a.png: cannot read image\n')
    assert error_message(error) == ("error: a.png: cannot read image", 2)


BROKEN_LOSS = textwrap.dedent('''
    from torch import nn
    from trainer.registry import LOSSES


    @LOSSES.register("broken_loss", heads={"classification": ("fc",)})
    class BrokenLoss(nn.Module):
        def forward(self, *, logits, labels):
            return {"part": logits.sum() * (1 / len([]))}  # a bug: ZeroDivisionError
''')


def test_an_unexpected_exception_in_a_command_is_one_line(tmp_path, cli, monkeypatch):
    (tmp_path / "broken_loss_plugin.py").write_text(BROKEN_LOSS)
    recipe = tiny_classification_recipe(imports=["broken_loss_plugin"])
    recipe["model"]["losses"] = [{"criterion": "broken_loss"}]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    result = cli("check", path)
    assert result.exit_code == 1
    assert "error: unexpected ZeroDivisionError: division by zero (run with --debug for the traceback)" in result.output
    assert "Traceback" not in result.output


def test_debug_lets_the_exception_through(cli):
    assert cli("list", "lossess").exit_code == 2
    assert isinstance(cli("--debug", "list", "lossess").exception, RecipeError)
