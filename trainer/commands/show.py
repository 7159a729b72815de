"""`trainer show`: the fully resolved recipe as YAML, or with --diff only what differs from the
schema defaults (itself a valid recipe that resolves to the same thing)."""

from __future__ import annotations

from typing import Any

import yaml

from trainer.recipe import Recipe, load_recipe, recipe_to_dict, recipe_to_yaml

NAME_KEYS = ("name", "criterion")


def _is_component(value: Any) -> bool:
    return isinstance(value, dict) and any(key in value for key in NAME_KEYS)


def differences(value: Any, default: Any) -> Any:
    """The parts of `value` that differ from `default`; None when nothing differs.

    Mappings are compared key by key (as recipes merge); lists, scalars and named components
    (a mapping with `name` or `criterion`) are kept whole, so the result still validates."""
    if isinstance(value, dict) and isinstance(default, dict) and not (_is_component(value) and value != default):
        found = {}
        for key, item in value.items():
            if key not in default:
                found[key] = item
                continue
            changed = differences(item, default[key])
            if changed is not None:
                found[key] = changed
        return found or None
    return None if value == default else value


def show_command(*, recipes: list[str], overrides: list[str], diff: bool = False) -> str:
    """The text `trainer show` prints."""
    loaded = load_recipe(recipes, overrides)
    if not diff:
        return recipe_to_yaml(loaded.recipe)
    changed = differences(recipe_to_dict(loaded.recipe), recipe_to_dict(Recipe())) or {}
    header = "# what differs from the defaults (`trainer show` without --diff prints everything)\n"
    body = yaml.safe_dump(changed, sort_keys=False, default_flow_style=None) if changed else "{}\n"
    return header + body
