"""Every shipped recipe loads and validates."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from trainer.recipe import load_recipe

RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def test_there_are_recipes_for_every_task():
    tasks = {path.parent.name for path in RECIPES}
    assert {"classification", "detection", "segmentation"} <= tasks


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_validates(path):
    loaded = load_recipe([path])
    assert loaded.recipe.task == path.parent.name
