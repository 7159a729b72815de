"""Merging follows intent: a component given another name drops the options inherited for the old
one; `key: ~` removes an inherited value; every value knows the file:line or override it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.recipe import RecipeError, load_recipe
from trainer.recipe.load import load_raw_recipe

BASE = """\
task: classification
data:
  format: shapes
  train: {num_images: 8, image_size: 32}
  val: {num_images: 8, image_size: 32}
augmentation:
  train: [{name: hflip, p: 0.3}, {name: normalize}]
model:
  architecture:
    backbone: {name: resnet18, pretrained: ~}
  losses:
    - {criterion: focal_loss, gamma: 1.5, weight: 2.0}
training:
  epochs: 3
  grad_clip: 5.0
  optimizer: {name: sgd, lr: 0.01, momentum: 0.8, nesterov: true}
  scheduler: {name: step, step_epochs: 2, gamma: 0.5}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def derived(tmp_path: Path, text: str) -> Path:
    write(tmp_path / "base.yaml", BASE)
    return write(tmp_path / "child.yaml", "base: base.yaml\n" + text)


def test_a_new_data_format_drops_the_old_datasets_options(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "images" / split / "circle").mkdir(parents=True)
    child = derived(tmp_path, f"data: {{format: image_folder, train: {{root: {tmp_path / 'images'}}}, "
                              f"val: {{root: {tmp_path / 'images'}}}}}\n")
    raw, _ = load_raw_recipe([child])
    assert raw["data"] == {"format": "image_folder", "train": {"root": str(tmp_path / "images")},
                           "val": {"root": str(tmp_path / "images")}}
    assert load_recipe([child]).recipe.data.format == "image_folder"  # no "unknown option 'num_images'"


@pytest.mark.parametrize(("text", "section", "expected"), [
    ("training: {optimizer: {name: adamw, lr: 0.001}}", ("training", "optimizer"), {"name": "adamw", "lr": 0.001}),
    ("training: {scheduler: {name: cosine}}", ("training", "scheduler"), {"name": "cosine"}),
    ("model: {architecture: {backbone: {name: resnet34}}}", ("model", "architecture", "backbone"),
     {"name": "resnet34"}),
])
def test_a_new_component_name_drops_the_old_options(tmp_path, text, section, expected):
    raw, _ = load_raw_recipe([derived(tmp_path, text + "\n")])
    node = raw
    for key in section:
        node = node[key]
    assert node == expected
    load_recipe([derived(tmp_path, text + "\n")])  # and it validates


def test_the_same_name_merges_key_by_key(tmp_path):
    raw, _ = load_raw_recipe([derived(tmp_path, "training: {optimizer: {name: sgd, lr: 0.1}}\n")])
    assert raw["training"]["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.8, "nesterov": True}


@pytest.mark.parametrize(("override", "path", "expected"), [
    ("training.optimizer.name=adam", ("training", "optimizer"), {"name": "adam"}),
    ("training.optimizer.name=sgd", ("training", "optimizer"),
     {"name": "sgd", "lr": 0.01, "momentum": 0.8, "nesterov": True}),
    ("model.losses.0.criterion=cross_entropy", ("model", "losses", 0), {"criterion": "cross_entropy"}),
    ("augmentation.train.0.name=vflip", ("augmentation", "train", 0), {"name": "vflip"}),
    ("data.format=image_folder", ("data",), {"format": "image_folder"}),
])
def test_overrides_follow_the_same_rules(tmp_path, override, path, expected):
    raw, _ = load_raw_recipe([write(tmp_path / "r.yaml", BASE)], [override])
    node = raw
    for key in path:
        node = node[key]
    assert node == expected


def test_null_removes_an_inherited_value_and_the_default_applies(tmp_path):
    child = derived(tmp_path, "data: {train: {image_size: ~}}\ntraining: {grad_clip: ~, epochs: ~}\n")
    recipe = load_recipe([child]).recipe
    assert recipe.data.train == {"num_images": 8}
    assert recipe.training.grad_clip is None and recipe.training.epochs == 10  # the schema defaults
    recipe = load_recipe([write(tmp_path / "r.yaml", BASE)], ["training.epochs=~", "data.val.image_size=~"]).recipe
    assert recipe.training.epochs == 10 and recipe.data.val == {"num_images": 8}


def test_a_key_below_a_number_is_an_error_naming_the_override(tmp_path):
    path = write(tmp_path / "r.yaml", BASE)
    with pytest.raises(RecipeError) as caught:
        load_recipe([path], ["training.epochs.max=3"])
    message = str(caught.value)
    assert "command-line override 'training.epochs.max=3'" in message and "training.epochs" in message
    assert "r.yaml" not in message


def test_every_value_knows_where_it_came_from(tmp_path):
    child = derived(tmp_path, "training:\n  epochs: 5\n")
    loaded = load_recipe([child], ["training.batch_size=4", "training.optimizer={name: adam, lr: 0.002}"])
    sources = loaded.sources()
    base, child = (tmp_path / "base.yaml").resolve(), child.resolve()
    assert sources["training.epochs"] == f"{child}:3:3"
    assert sources["training.grad_clip"] == f"{base}:15:3"
    assert sources["model.losses[0].gamma"] == f"{base}:12:31"
    assert sources["training.batch_size"] == "command-line override 'training.batch_size=4'"
    assert sources["training.optimizer.lr"] == "command-line override 'training.optimizer={name: adam, lr: 0.002}'"
    assert sources["training.amp"] == "default"
    assert sources["data.train.image_size"] == f"{base}:4:26"
    text = loaded.sources_text()
    assert "training.amp: \"auto\"" in text and "# default" in text
    assert len(text.splitlines()) == len(sources)


def test_an_override_sets_an_option_of_a_default_component(tmp_path):
    """The recipe names no scheduler: an override of one option keeps the schema default's name."""
    path = write(tmp_path / "r.yaml", BASE.replace("  scheduler: {name: step, step_epochs: 2, gamma: 0.5}\n", ""))
    loaded = load_recipe([path], ["training.scheduler.warmup_epochs=1"])
    assert loaded.recipe.training.scheduler["name"] == "cosine"
    assert loaded.recipe.training.scheduler["warmup_epochs"] == 1
    assert loaded.sources()["training.scheduler.name"] == "default"


def test_a_value_error_from_an_override_points_at_the_override(tmp_path):
    path = write(tmp_path / "r.yaml", BASE)
    with pytest.raises(RecipeError) as caught:
        load_recipe([path], ["training.optimizer.lr=-1"])
    assert "command-line override 'training.optimizer.lr=-1': training.optimizer.lr: must be > 0" in str(caught.value)
    raw, locations = load_raw_recipe([path], ["data.val.image_size=16"])
    assert locations.blame(("data", "val")) == "command-line override 'data.val.image_size=16'"
    assert locations.blame(("data", "train")).endswith("r.yaml:4:3")
