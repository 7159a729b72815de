"""Shared test helpers: tiny recipes written to a temp dir, and the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the suite runs 2 workers on 2 cores; subprocesses inherit this

import pytest
import torch  # noqa: E402
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def tiny_classification_recipe(**sections) -> dict:
    recipe = {
        "task": "classification",
        "data": {
            "format": "shapes",
            "train": {"num_images": 32, "image_size": 32},
            "val": {"num_images": 16, "image_size": 32},
        },
        "augmentation": {"train": [{"name": "hflip"}, {"name": "normalize"}], "val": [{"name": "normalize"}]},
        "model": {
            "architecture": {"backbone": {"name": "resnet18"}},
            "losses": [{"criterion": "cross_entropy"}],
        },
        "training": {"epochs": 2, "batch_size": 8, "optimizer": {"name": "sgd", "lr": 0.02}},
        "logging": {"progress": "none", "plots": False},
        "environment": {"num_workers": 0},
    }
    for name, value in sections.items():
        recipe[name] = value
    return recipe


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(recipe: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path

    return write


@pytest.fixture
def cli():
    from trainer.cli import app

    runner = CliRunner()

    def invoke(*arguments: str):
        return runner.invoke(app, [str(a) for a in arguments])

    return invoke
