"""Recipes: load YAML files, merge, override, validate, and give a typed `Recipe`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from trainer.components import load_builtin_components
from trainer.recipe.errors import RecipeError, RecipeIssue
from trainer.recipe.load import Locations, load_raw_recipe
from trainer.recipe.schema import Recipe
from trainer.recipe.sources import format_sources, value_sources
from trainer.recipe.validate import validate_raw_recipe


@dataclass
class LoadedRecipe:
    recipe: Recipe
    locations: Locations  # where each key was written, for errors (`locations.find(path)`)
    value_sources: dict[str, str] = field(default_factory=dict, repr=False)

    def sources(self) -> dict[str, str]:
        """{key path: "file:line:col" | "command-line override 'k=v'" | "default"} for every value."""
        return dict(self.value_sources)

    def sources_text(self) -> str:
        """Every resolved value with where it came from, one per line (`trainer show --sources`)."""
        return format_sources(recipe_to_dict(self.recipe), self.value_sources)


def load_recipe(paths: list[str | Path], overrides: list[str] | tuple[str, ...] = ()) -> LoadedRecipe:
    """Load, merge, override and validate; raise RecipeError listing every problem."""
    load_builtin_components()
    raw, locations = load_raw_recipe(list(paths), list(overrides))
    validate_raw_recipe(raw, locations)
    recipe = recipe_from_dict(raw)
    sources = value_sources(recipe_to_dict(recipe), raw, locations)
    return LoadedRecipe(recipe=recipe, locations=locations, value_sources=sources)


def recipe_from_dict(raw: dict[str, Any]) -> Recipe:
    merged = OmegaConf.merge(OmegaConf.structured(Recipe), raw)
    return OmegaConf.to_object(merged)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(recipe), resolve=True)


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None)


__all__ = ["LoadedRecipe", "Recipe", "RecipeError", "RecipeIssue", "load_recipe", "recipe_from_dict",
           "recipe_to_dict", "recipe_to_yaml"]
