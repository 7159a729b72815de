"""`trainer show`: the fully resolved recipe as YAML, or with --diff only what differs from the
schema defaults (itself a valid recipe that resolves to the same thing), or with --sources every
value with the place it came from."""

from __future__ import annotations

import yaml

from trainer.recipe import Recipe, RecipeError, RecipeIssue, load_recipe, recipe_to_dict, recipe_to_yaml
from trainer.recipe.diff import differences


def show_command(*, recipes: list[str], overrides: list[str], diff: bool = False, sources: bool = False) -> str:
    """The text `trainer show` prints: the resolved recipe; with `diff` what differs from the defaults; with
    `sources` every value and where it came from (file:line:col, a command-line override, or the default)."""
    if diff and sources:
        raise RecipeError([RecipeIssue((), "give --diff or --sources, not both", where="trainer show")])
    loaded = load_recipe(recipes, overrides)
    if sources:
        return loaded.sources_text()
    if not diff:
        return recipe_to_yaml(loaded.recipe)
    changed = differences(recipe_to_dict(loaded.recipe), recipe_to_dict(Recipe())) or {}
    header = "# what differs from the defaults (`trainer show` without --diff prints everything)\n"
    body = yaml.safe_dump(changed, sort_keys=False, default_flow_style=None) if changed else "{}\n"
    return header + body
