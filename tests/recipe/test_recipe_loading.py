"""Loading: several files merged in order, `base:` chains relative to the file, cycles, lists
replaced whole, overrides (including list items)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainer.recipe import RecipeError, load_recipe
from trainer.recipe.load import load_raw_recipe, parse_override

DATA = {"format": "shapes", "train": {"num_images": 8, "image_size": 32}, "val": {"num_images": 8, "image_size": 32}}
MODEL = {"architecture": {"backbone": {"name": "resnet18"}}, "losses": [{"criterion": "cross_entropy"}]}
AUGMENTATION = {"train": [{"name": "hflip", "p": 0.5}, {"name": "normalize"}], "val": [{"name": "normalize"}]}


def write(path: Path, content: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


def test_several_files_merge_in_order(tmp_path):
    data = write(tmp_path / "data.yaml", {"task": "classification", "data": DATA})
    model = write(tmp_path / "model.yaml", {"model": MODEL})
    training = write(tmp_path / "training.yaml", {"training": {"epochs": 3, "batch_size": 4}})
    later = write(tmp_path / "later.yaml", {"training": {"epochs": 5}, "data": {"train": {"image_size": 48}}})
    recipe = load_recipe([data, model, training, later]).recipe
    assert recipe.training.epochs == 5  # the later file wins
    assert recipe.training.batch_size == 4  # mappings merge key by key
    assert recipe.data.train == {"num_images": 8, "image_size": 48}
    assert recipe.model.architecture.backbone == {"name": "resnet18"}


def test_base_chain_is_relative_to_each_file(tmp_path):
    write(tmp_path / "common" / "data.yaml", {"task": "classification", "data": DATA, "training": {"epochs": 7}})
    write(tmp_path / "common" / "model.yaml", {"base": "data.yaml", "model": MODEL, "training": {"batch_size": 4}})
    child = {"base": "../../common/model.yaml", "training": {"epochs": 2}}
    child = write(tmp_path / "runs" / "mine" / "child.yaml", child)
    recipe = load_recipe([child]).recipe
    assert recipe.training.epochs == 2  # the file beats its base
    assert recipe.training.batch_size == 4
    assert recipe.data.train["num_images"] == 8  # from the base's base


def test_several_bases_merge_in_order(tmp_path):
    write(tmp_path / "a.yaml", {"task": "classification", "data": DATA, "model": MODEL, "training": {"epochs": 1}})
    write(tmp_path / "b.yaml", {"training": {"epochs": 2, "batch_size": 4}})
    child = write(tmp_path / "child.yaml", {"base": ["a.yaml", "b.yaml"]})
    recipe = load_recipe([child]).recipe
    assert (recipe.training.epochs, recipe.training.batch_size) == (2, 4)


def test_base_cycle_is_an_error_at_the_base_line(tmp_path):
    write(tmp_path / "a.yaml", "task: classification\nbase: b.yaml\n")
    write(tmp_path / "b.yaml", "base: c.yaml\n")
    write(tmp_path / "c.yaml", "# comes back\nbase: a.yaml\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe([tmp_path / "a.yaml"])
    message = str(caught.value)
    assert "base recipes form a cycle" in message
    assert f"{(tmp_path / 'c.yaml').resolve()}:2:1: base:" in message
    assert "a.yaml -> " in message and message.rstrip().endswith("a.yaml")


def test_a_file_that_is_its_own_base(tmp_path):
    path = write(tmp_path / "self.yaml", "base: ./self.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe([path])


def test_missing_base_names_the_line(tmp_path):
    path = write(tmp_path / "child.yaml", "task: classification\nbase: nowhere.yaml\n")
    with pytest.raises(RecipeError, match=r"child.yaml:2:1: base: base recipe not found: .*nowhere.yaml"):
        load_recipe([path])


def test_errors_in_a_base_point_at_the_base_file(tmp_path):
    write(tmp_path / "base.yaml", {"task": "classification", "data": DATA, "model": MODEL, "training": {"epoch": 3}})
    child = write(tmp_path / "child.yaml", {"base": "base.yaml", "training": {"batch_size": 4}})
    with pytest.raises(RecipeError) as caught:
        load_recipe([child])
    assert f"{(tmp_path / 'base.yaml').resolve()}:" in str(caught.value)
    assert "training.epoch: unknown key 'epoch'; did you mean 'epochs'?" in str(caught.value)


def test_lists_are_replaced_whole(tmp_path):
    base = {"task": "classification", "data": DATA, "model": MODEL, "augmentation": AUGMENTATION}
    write(tmp_path / "base.yaml", base)
    child = write(tmp_path / "child.yaml", {
        "base": "base.yaml",
        "augmentation": {"train": [{"name": "normalize"}]},
        "model": {"losses": [{"criterion": "focal_loss", "gamma": 1.5}]},
    })
    recipe = load_recipe([child]).recipe
    assert recipe.augmentation.train == [{"name": "normalize"}]
    assert recipe.augmentation.val == [{"name": "normalize"}]
    assert recipe.model.losses == [{"criterion": "focal_loss", "gamma": 1.5}]
    assert recipe.model.architecture.backbone == {"name": "resnet18"}


def test_replaced_list_forgets_the_old_locations(tmp_path):
    write(tmp_path / "base.yaml", {"augmentation": {"train": [{"name": "hflip"}, {"name": "normalize"}]}})
    child = write(tmp_path / "child.yaml", "base: base.yaml\naugmentation:\n  train: [{name: normalize}]\n")
    raw, locations = load_raw_recipe([child])
    assert raw["augmentation"]["train"] == [{"name": "normalize"}]
    assert locations.find(("augmentation", "train", 1)).endswith("child.yaml:3:3")


@pytest.mark.parametrize("override", ["model.losses.0.weight=2", "model.losses[0].weight=2"])
def test_list_item_override(tmp_path, override):
    path = write(tmp_path / "r.yaml", {"task": "classification", "data": DATA, "model": MODEL})
    recipe = load_recipe([path], [override, "model.losses.0.label_smoothing=0.1"]).recipe
    assert recipe.model.losses == [{"criterion": "cross_entropy", "weight": 2, "label_smoothing": 0.1}]


def test_override_values_are_yaml(tmp_path):
    path = write(tmp_path / "r.yaml", {"task": "classification", "data": DATA, "model": MODEL})
    overrides = [
        "augmentation.train=[{name: normalize}]", "training.grad_clip=~", "training.optimizer={name: adamw, lr: 3e-4}",
        "model.architecture.neck.name=fpn",
    ]
    raw, _ = load_raw_recipe([path], overrides)
    assert raw["augmentation"]["train"] == [{"name": "normalize"}]
    assert "grad_clip" not in raw["training"]  # `~` removes the value: the default (no clipping) applies
    assert raw["training"]["optimizer"] == {"name": "adamw", "lr": 3e-4}
    assert raw["model"]["architecture"]["neck"] == {"name": "fpn"}


def test_override_past_the_end_of_a_list(tmp_path):
    path = write(tmp_path / "r.yaml", {"task": "classification", "data": DATA, "model": MODEL})
    with pytest.raises(RecipeError, match=r"command-line override 'model.losses.3.weight=2'.*no list item 3"):
        load_recipe([path], ["model.losses.3.weight=2"])


@pytest.mark.parametrize("text", ["training.epochs", "=3", "training..epochs=3"])
def test_malformed_overrides(text):
    with pytest.raises(RecipeError, match="override"):
        parse_override(text)


def test_file_not_a_mapping(tmp_path):
    path = write(tmp_path / "r.yaml", "- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe([path])
