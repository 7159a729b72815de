"""Recipes: load YAML files, merge, override, validate, and give a typed `Recipe`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from trainer.components import load_builtin_components
from trainer.recipe.errors import RecipeError, RecipeIssue
from trainer.recipe.load import Locations, load_raw_recipe
from trainer.recipe.schema import Recipe
from trainer.recipe.validate import validate_raw_recipe


@dataclass
class LoadedRecipe:
    recipe: Recipe
    raw: dict[str, Any]  # what the files and overrides said, merged
    locations: Locations
    sources: list[str]


def load_recipe(paths: list[str | Path], overrides: list[str] | tuple[str, ...] = ()) -> LoadedRecipe:
    """Load, merge, override and validate; raise RecipeError listing every problem."""
    load_builtin_components()
    raw, locations = load_raw_recipe(list(paths), list(overrides))
    validate_raw_recipe(raw, locations)
    recipe = recipe_from_dict(raw)
    return LoadedRecipe(recipe=recipe, raw=raw, locations=locations, sources=[str(p) for p in paths])


def recipe_from_dict(raw: dict[str, Any]) -> Recipe:
    merged = OmegaConf.merge(OmegaConf.structured(Recipe), raw)
    return OmegaConf.to_object(merged)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(recipe), resolve=True)


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None)


__all__ = ["LoadedRecipe", "Recipe", "RecipeError", "RecipeIssue", "load_recipe", "recipe_from_dict",
           "recipe_to_dict", "recipe_to_yaml"]
