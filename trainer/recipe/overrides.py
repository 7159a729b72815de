"""Command-line overrides `key.path=value` (the value is YAML); they follow the merge rules: `~`
removes the value, a new component name drops the options of the old component."""

from __future__ import annotations

import re
from typing import Any

import yaml

from trainer.files import FileReadError
from trainer.recipe.errors import KeyPath, RecipeError, RecipeIssue
from trainer.recipe.locations import OVERRIDE_PREFIX, Locations
from trainer.recipe.merge import default_value, name_key_at, without_nulls
from trainer.recipe.sources import DEFAULT
from trainer.recipe.yaml_loader import parse_yaml_value


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """`a.b[0].c=value` -> (("a", "b", 0, "c"), parsed value); a malformed one is a RecipeError."""
    if "=" not in text:
        raise RecipeError([RecipeIssue((), f"override '{text}' must look like key.path=value", where="command line")])
    key, raw_value = text.split("=", 1)
    key = re.sub(r"\[(\d+)\]", r".\1", key.strip())  # model.losses[0].weight, as errors print it
    if not key or any(not part for part in key.split(".")):
        raise RecipeError([RecipeIssue((), f"override '{text}' has an empty key", where="command line")])
    path = tuple(int(part) if part.isdigit() else part for part in key.split("."))
    try:
        value = parse_yaml_value(raw_value, source="command line") if raw_value != "" else ""
    except yaml.YAMLError:
        value = raw_value  # not YAML: the text itself
    except (FileReadError, ValueError, TypeError, OverflowError) as error:  # past the reader's limits; a bad date
        problem = error.problem if isinstance(error, FileReadError) else str(error)
        raise RecipeError([RecipeIssue((), f"override '{text}': {problem}", where="command line")]) from None
    return path, value


def _default_component(path: KeyPath, locations: Locations) -> dict[str, Any]:
    """A new mapping at `path`: a component the recipe leaves to the schema default (e.g. `training.scheduler`)
    starts as that default's name, so `training.scheduler.warmup_epochs=1` sets an option of the default."""
    key = name_key_at(path)
    name = default_value(path + (key,)) if key is not None else None
    if name is None:
        return {}
    locations.set(path + (key,), DEFAULT)
    return {key: name}


def _container_at(data: dict[str, Any], path: KeyPath, where: str, locations: Locations) -> Any:
    """The mapping or list that holds `path[-1]`; missing mappings on the way are created."""
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        here = path[: depth + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise RecipeError([RecipeIssue(here, f"no list item {part} (the list has {len(node)})", where)])
            node = node[part]
        elif part not in node or node[part] is None:
            node[part] = _default_component(here, locations)
            node = node[part]
        elif isinstance(node[part], (dict, list)):
            node = node[part]
        else:
            inner = path[depth + 1]
            raise RecipeError([RecipeIssue(here, f"is {node[part]!r}, not a mapping: it has no key '{inner}' to set",
                                           where)])
    return node


def apply_override(data: dict[str, Any], text: str, locations: Locations) -> None:
    """Apply one override to the merged recipe `data` in place, recording it as the place of what it sets."""
    path, value = parse_override(text)
    where = f"{OVERRIDE_PREFIX} '{text}'"
    node = _container_at(data, path, where, locations)
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise RecipeError([RecipeIssue(path, f"no list item {last} (the list has {len(node)})", where)])
        node[last] = without_nulls(value)
        locations.drop_under(path)
    else:
        parent = path[:-1]
        if name_key_at(parent) == last and value != node.get(last, default_value(path)):
            node.clear()  # another component: the options of the old one go
            locations.drop_under(parent)
        locations.drop_under(path)
        if value is None:
            node.pop(last, None)
            locations.set(path, where)
            return
        node[last] = without_nulls(value)
    _record(path, value, where, locations)


def _record(path: KeyPath, value: Any, where: str, locations: Locations) -> None:
    """The override is the place of `path` and of everything inside its value."""
    locations.set(path, where)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _record(path + (key,), item, where, locations)
