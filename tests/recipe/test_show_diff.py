"""`trainer show`: the resolved recipe; `--diff`: only what differs from the defaults, itself a
recipe that resolves to the same thing."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT
from trainer.recipe import load_recipe, recipe_to_dict
from trainer.recipe.diff import changed_paths, differences

RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def test_differences_keep_components_and_lists_whole():
    default = {"a": 1, "b": {"c": 2, "d": 3}, "opt": {"name": "sgd"}, "items": [1, 2]}
    value = {"a": 1, "b": {"c": 2, "d": 4}, "opt": {"name": "sgd", "lr": 0.1}, "items": [1, 2, 3]}
    assert differences(value, default) == {"b": {"d": 4}, "opt": {"name": "sgd", "lr": 0.1}, "items": [1, 2, 3]}
    assert differences(default, default) is None


@pytest.mark.parametrize("path", RECIPES[:3], ids=lambda p: p.name)
def test_diff_resolves_to_the_same_recipe(tmp_path, cli, path):
    result = cli("show", "--diff", path, "training.epochs=2")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("# what differs from the defaults")
    diff = yaml.safe_load(text)
    assert diff["training"]["epochs"] == 2
    if "environment:" not in path.read_text():
        assert "environment" not in diff  # a section the recipe does not write stays at its defaults
    (tmp_path / "diff.yaml").write_text(text)
    original = load_recipe([path], ["training.epochs=2"]).recipe
    assert recipe_to_dict(load_recipe([tmp_path / "diff.yaml"]).recipe) == recipe_to_dict(original)


def test_diff_of_a_defaults_only_recipe(tmp_path, cli):
    path = tmp_path / "r.yaml"
    path.write_text("model: {losses: [{criterion: cross_entropy}]}\n"
                    "data: {train: {num_images: 4}, val: {num_images: 4}}\n")
    result = cli("show", "--diff", path)
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {
        "data": {"train": {"num_images": 4}, "val": {"num_images": 4}},
        "model": {"losses": [{"criterion": "cross_entropy"}]},
    }


def test_show_prints_everything(tmp_path, cli):
    result = cli("show", RECIPES[0], "training.batch_size=3")
    assert result.exit_code == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["training"]["batch_size"] == 3
    assert set(shown) >= {"task", "data", "augmentation", "model", "training", "logging", "environment"}


def test_changed_paths_go_both_ways():
    left = {"training": {"epochs": 3, "optimizer": {"name": "sgd", "lr": 0.1}}, "task": "detection"}
    right = {"training": {"epochs": 5, "optimizer": {"name": "sgd"}}, "task": "detection", "imports": ["x"]}
    assert changed_paths(left, right) == [("training", "epochs"), ("training", "optimizer", "lr"), ("imports",)]
    assert changed_paths(left, left) == []
