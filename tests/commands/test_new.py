"""`trainer new`: the printed recipe validates, matches the JSON Schema, and `trainer check` passes on it."""

from __future__ import annotations

import importlib.util

import jsonschema
import pytest
import yaml

from trainer.commands.check import check_command
from trainer.recipe import load_recipe
from trainer.recipe.json_schema import recipe_json_schema

COMBINATIONS = [  # task, loss, expected architecture
    ("classification", None, {"backbone": {"name": "resnet18"}}),
    ("classification", "focal_loss", {"backbone": {"name": "resnet18"}}),
    ("detection", "yolox_loss", {"backbone": {"name": "cspdarknet_nano"}, "neck": {"name": "pafpn", "depthwise": True},
                                 "head": {"name": "anchor_free_decoupled", "depthwise": True}}),  # YOLOX-nano
    ("detection", "retinanet_loss", {"backbone": {"name": "resnet18"}, "neck": {"name": "fpn"}}),
    ("segmentation", "pidnet_loss", {"full": {"name": "pidnet", "size": "s"}}),
    ("segmentation", "cross_entropy", {"backbone": {"name": "resnet18"}, "head": {"name": "seg_head"}}),
]
TINY = ["data.train.num_images=8", "data.val.num_images=4", "training.batch_size=4", "environment.num_workers=0"]


def new(cli, tmp_path, *arguments: str):
    result = cli("new", *arguments)
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "recipe.yaml"
    path.write_text(result.stdout)
    return path


IDS = [f"{task}-{loss or 'default'}" for task, loss, _ in COMBINATIONS]


@pytest.mark.parametrize("task, loss, architecture", COMBINATIONS, ids=IDS)
def test_new_recipe_passes_check(cli, tmp_path, task, loss, architecture):
    path = new(cli, tmp_path, "--task", task, *(["--loss", loss] if loss else []))
    text = path.read_text()
    assert text.startswith("# A ") and "\n# " in text  # commented
    raw = yaml.safe_load(text)
    assert raw["task"] == task
    assert raw["model"]["architecture"] == architecture
    # on shapes: only data, model, losses, epochs and batch size; the rest is the defaults that train
    assert "augmentation" not in raw
    assert raw["training"] == {"epochs": raw["training"]["epochs"], "batch_size": raw["training"]["batch_size"],
                               "optimizer": {"name": "auto"}, "scheduler": {"name": "cosine"}}
    if task != "classification" and importlib.util.find_spec(f"trainer.tasks.{task}") is None:
        pytest.skip(f"trainer.tasks.{task} is not written yet")
    values = check_command(recipes=[str(path)], overrides=TINY, device="cpu")
    assert values


def test_new_recipes_match_the_json_schema(cli, tmp_path):
    recipes = [new(cli, tmp_path, "--task", task, *(["--loss", loss] if loss else [])).read_text()
               for task, loss, _ in COMBINATIONS]
    validator = jsonschema.Draft7Validator(recipe_json_schema())
    for text in recipes:
        assert list(validator.iter_errors(yaml.safe_load(text))) == []


@pytest.mark.parametrize("arguments", [
    ("--task", "classification", "--data", "image_folder", "--model", "mobilenet_v3_small"),
    ("--task", "detection", "--data", "coco", "--model", "resnet50"),
    ("--task", "detection", "--loss", "retinanet_loss", "--data", "yolo"),
    ("--task", "segmentation", "--loss", "focal_loss", "--data", "mask_folder"),
])
def test_new_for_files_on_disk_validates(cli, tmp_path, arguments):
    path = new(cli, tmp_path, *arguments)
    loaded = load_recipe([path])  # validates; the data paths are placeholders to fill in
    assert loaded.recipe.data.format == arguments[arguments.index("--data") + 1]
    assert loaded.recipe.augmentation.val[-1] == {"name": "normalize"}


def test_segmentation_cross_entropy_ignores_255(cli, tmp_path):
    raw = yaml.safe_load(new(cli, tmp_path, "--task", "segmentation", "--loss", "cross_entropy").read_text())
    assert raw["model"]["losses"] == [{"criterion": "cross_entropy", "ignore_index": 255}]


def test_new_writes_a_file_but_never_overwrites(cli, tmp_path):
    out = tmp_path / "mine.yaml"
    assert cli("new", "--task", "classification", "--out", out).exit_code == 0
    assert load_recipe([out]).recipe.task == "classification"
    assert "#   trainer train mine.yaml  trains" in out.read_text()  # the next steps name the file written
    again = cli("new", "--task", "classification", "--out", out)
    assert again.exit_code == 2 and "not overwriting" in again.stderr


@pytest.mark.parametrize("arguments, message", [
    (("--task", "classif"), "did you mean 'classification'?"),
    (("--task", "classification", "--loss", "yolox_loss"), "'yolox_loss' trains detection, not classification"),
    (("--task", "detection", "--loss", "focal"), "did you mean 'focal_loss'?"),
    (("--task", "segmentation", "--loss", "cross_entropy", "--model", "pidnet"), "compatible: seg_head"),
    (("--task", "classification", "--model", "resnet19"), "did you mean 'resnet18'?"),
    (("--task", "classification", "--data", "coco"), "dataset 'coco' holds detection data, not classification"),
])
def test_new_usage_errors(cli, arguments, message):
    result = cli("new", *arguments)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
