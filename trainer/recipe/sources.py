"""Where every resolved value of a recipe came from: a file:line:col, a command-line override, or
the schema default (`trainer show --sources`)."""

from __future__ import annotations

import json
from typing import Any, Iterator

from trainer.recipe.errors import KeyPath, format_path
from trainer.recipe.locations import Locations

DEFAULT = "default"


def leaves(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """(key path, value) of every leaf: mappings and lists of mappings are walked, other lists are leaves."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            yield from leaves(item, path + (index,))
    else:
        yield path, value


def _written(raw: dict[str, Any], path: KeyPath) -> bool:
    node: Any = raw
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def value_sources(resolved: dict[str, Any], raw: dict[str, Any], locations: Locations) -> dict[str, str]:
    """{key path: "file:line:col" | "command-line override 'k=v'" | "default"} for every leaf of `resolved`."""
    sources = {}
    for path, _ in leaves(resolved):
        where = locations.find(path) if _written(raw, path) else None
        sources[format_path(path)] = where or DEFAULT
    return sources


def format_sources(resolved: dict[str, Any], sources: dict[str, str]) -> str:
    """One line per value: `key.path: value  # where it came from`, aligned."""
    rows = [(f"{format_path(path)}: {json.dumps(value)}", sources[format_path(path)])
            for path, value in leaves(resolved)]
    width = max(len(text) for text, _ in rows)
    return "\n".join(f"{text.ljust(width)}  # {where}" for text, where in rows) + "\n"
