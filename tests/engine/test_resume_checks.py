"""`--resume` checks the run's last.pt against the recipe (format, model, optimizer) before anything
in the run directory changes; stale temp files of killed writers are removed when it goes on."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import tiny_classification_recipe
from trainer.commands.train import train
from trainer.engine.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run of one epoch (resumable with training.epochs=2)."""
    folder = tmp_path_factory.mktemp("finished")
    recipe = tiny_classification_recipe()
    recipe["data"]["train"]["num_images"] = 16
    recipe["data"]["val"]["num_images"] = 8
    recipe["training"]["epochs"] = 1
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return train(recipes=[str(path)], overrides=[], output_dir=str(folder / "runs"), name="done")


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _bare_state_dict(last: Path) -> None:
    torch.save(load_checkpoint(last)["model"], last)


def _another_model(last: Path) -> None:
    checkpoint = load_checkpoint(last)
    model = checkpoint["model"]
    model["head.linear.weight"] = torch.zeros(10, 512)  # 10 classes, not 4
    model["extra.weight"] = torch.zeros(3)
    del model[next(iter(model))]
    torch.save(checkpoint, last)


def _another_optimizer(last: Path) -> None:
    checkpoint = load_checkpoint(last)
    group = checkpoint["optimizer"]["param_groups"][0]
    group["params"] = group["params"][:-1]  # one parameter fewer: another model's optimizer
    torch.save(checkpoint, last)


def _foreign_file(last: Path) -> None:
    last.write_bytes(b"these are not the weights you are looking for\n")


@pytest.mark.parametrize("spoil, expected", [
    (_bare_state_dict, ("is not a training checkpoint written by trainer", "backbone.")),
    (_another_model, ("does not fit the recipe: model: missing", "unexpected extra.weight",
                      "head.linear.weight (10, 512) in the checkpoint, (4, 512) in the recipe's model")),
    (_another_optimizer, ("does not fit the recipe: the optimizer's parameter groups hold",)),
    (_foreign_file, ("cannot read checkpoint",)),
], ids=["bare-state-dict", "another-model", "another-optimizer", "foreign-file"])
def test_a_checkpoint_that_does_not_fit_changes_nothing(run, cli, spoil, expected):
    last = run / "checkpoints" / "last.pt"
    spoil(last)
    before = _snapshot(run)
    result = cli("train", "--resume", run, "training.epochs=2")
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert str(last) in message and all(part in message for part in expected), message
    assert "Traceback" not in result.output
    assert _snapshot(run) == before


def test_a_checkpoint_of_the_earlier_format_resumes(run, cli):
    last = run / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(last)
    counters = checkpoint.pop("counters")
    del checkpoint["format"]
    torch.save({**checkpoint, **counters}, last)  # the counters at the top level, as written before
    result = cli("train", "--resume", run, "training.epochs=2")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(last)["counters"]["epoch"] == 2


def test_stale_temp_files_of_dead_writers_are_removed_on_resume(run, cli):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = run / "checkpoints" / f".last.pt.tmp-{int(dead.stdout)}"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    live = run / "checkpoints" / ".last.pt.tmp-1"  # pid 1 is alive: not ours to remove
    live.write_bytes(b"PK\x03\x04 being written")
    result = cli("train", "--resume", run, "training.epochs=2")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and live.exists()
