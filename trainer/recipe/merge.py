"""How recipes merge: mappings key by key, lists and scalars replaced whole; `key: ~` removes the
inherited value (the default applies again); a component given another name (a data `format`, a
`name`, a `criterion`) starts afresh, without the options inherited for the old one."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from trainer.recipe.errors import KeyPath
from trainer.recipe.locations import Locations
from trainer.registry import REGISTRIES

ANY_INDEX = "*"  # matches every index of a list in a component pattern


@lru_cache(maxsize=1)
def component_patterns() -> tuple[tuple[tuple[str, ...], str], ...]:
    """(key path of a component's mapping, the key that holds its name), from the registries."""
    patterns = []
    for registry in REGISTRIES.values():
        if registry.name_at is not None:
            *parent, key = registry.name_at.split(".")
            patterns.append((tuple(parent), key))
            continue
        for recipe_path in registry.recipe_paths:
            parts = recipe_path.split(".")
            if parts[-1].endswith("[]"):
                parts = parts[:-1] + [parts[-1][:-2], ANY_INDEX]
            patterns.append((tuple(parts), registry.name_key))
    return tuple(patterns)


def name_key_at(path: KeyPath) -> str | None:
    """The name key of the component whose mapping sits at `path`, or None for other mappings."""
    for pattern, key in component_patterns():
        if len(pattern) == len(path) and all(p == ANY_INDEX or p == q for p, q in zip(pattern, path)):
            return key
    return None


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    from omegaconf import OmegaConf

    from trainer.recipe.schema import Recipe

    return OmegaConf.to_container(OmegaConf.structured(Recipe))


def default_value(path: KeyPath) -> Any:
    """The schema default at `path` (None where there is none)."""
    node: Any = _defaults()
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def renames_component(path: KeyPath, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when `new`, merged over `old` at `path`, names another component than `old` did."""
    key = name_key_at(path)
    if key is None or key not in new:
        return False
    old_name = old.get(key, default_value(path + (key,)))
    return new[key] != old_name


def without_nulls(value: Any) -> Any:
    """A copy without the `key: ~` entries of its mappings, at any depth."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return copy.deepcopy(value)


def merge_into(base: dict[str, Any], update: dict[str, Any], locations: Locations, path: KeyPath = ()) -> None:
    """Merge `update` into `base` in place by the rules above; forget the places of what is replaced."""
    for key, value in update.items():
        here = path + (key,)
        old = base.get(key)
        if value is None:
            base.pop(key, None)
            locations.drop_under(here)
        elif isinstance(value, dict) and isinstance(old, dict) and not renames_component(here, old, value):
            merge_into(old, value, locations, here)
        else:
            locations.drop_under(here)
            base[key] = without_nulls(value)
