"""Load recipe files (with `base:` chains), merge them in order, apply `key.path=value` overrides.

Every key and value keeps where it came from (file:line:col, or the override), so that errors
can point at the line.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from trainer.recipe.errors import KeyPath, RecipeError, RecipeIssue, format_path


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` and `1.0e3` as numbers (YAML 1.1 would keep them strings)."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml_value(text: str) -> Any:
    return yaml.load(text, Loader=RecipeLoader)


class Locations:
    """Where each key path was written: 'file:line:col' or "command-line override 'k=v'"."""

    def __init__(self) -> None:
        self._where: dict[KeyPath, str] = {}

    def set(self, path: KeyPath, where: str) -> None:
        self._where[path] = where

    def drop_under(self, path: KeyPath) -> None:
        for key in [key for key in self._where if key[: len(path)] == path and len(key) > len(path)]:
            del self._where[key]

    def update(self, other: "Locations") -> None:
        self._where.update(other._where)

    def find(self, path: KeyPath) -> str | None:
        """The location of `path`, or of its closest written ancestor, or else the recipe files."""
        path = tuple(path)
        while path:
            if path in self._where:
                return self._where[path]
            path = path[:-1]
        return self._where.get(())


def _record_locations(
    node: yaml.Node, path: KeyPath, filename: str, locations: Locations, issues: list[RecipeIssue]
) -> None:
    """Record the place of every key and list item; report keys written twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, str] = {}
        for key_node, value_node in node.value:
            child = path + (key_node.value,)
            mark = key_node.start_mark
            where = f"{filename}:{mark.line + 1}:{mark.column + 1}"
            if key_node.value in seen and key_node.tag != "tag:yaml.org,2002:merge":
                issues.append(RecipeIssue(child, f"key written twice (first at {seen[key_node.value]})", where))
            seen.setdefault(key_node.value, where)
            locations.set(child, where)
            _record_locations(value_node, child, filename, locations, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = path + (index,)
            mark = item.start_mark
            locations.set(child, f"{filename}:{mark.line + 1}:{mark.column + 1}")
            _record_locations(item, child, filename, locations, issues)


def read_yaml(path: Path) -> tuple[dict[str, Any], Locations]:
    """Safe-load one YAML file into a mapping, with the location of each key."""
    if not path.is_file():
        raise RecipeError([RecipeIssue((), f"recipe file not found: {path}", where=str(path))])
    text = path.read_text(encoding="utf-8")
    loader = RecipeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise RecipeError([RecipeIssue((), f"invalid YAML: {problem}", where=where)]) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError([RecipeIssue((), "a recipe file must be a mapping of sections", where=str(path))])
    locations = Locations()
    issues: list[RecipeIssue] = []
    if node is not None:
        _record_locations(node, (), str(path), locations, issues)
    if issues:
        raise RecipeError(issues)
    return data, locations


def merge_into(base: dict[str, Any], update: dict[str, Any], locations: Locations, path: KeyPath = ()) -> None:
    """Mappings merge key by key; lists and scalars replace whole."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_into(base[key], value, locations, path + (key,))
        else:
            locations.drop_under(path + (key,))
            base[key] = copy.deepcopy(value)


def load_file_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Locations]:
    """One recipe file, its `base:` (a path relative to the file, or a list of them) merged first."""
    path = path.resolve()
    data, file_locations = read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        return data, file_locations
    base_list = [bases] if isinstance(bases, str) else bases
    if not isinstance(base_list, list) or not all(isinstance(item, str) for item in base_list):
        raise RecipeError([RecipeIssue(("base",), "must be a path or a list of paths", file_locations.find(("base",)))])
    merged: dict[str, Any] = {}
    locations = Locations()
    where = file_locations.find(("base",))
    for base_name in base_list:
        base_path = (path.parent / base_name).resolve()
        if not base_path.is_file():
            raise RecipeError([RecipeIssue(("base",), f"base recipe not found: {base_path}", where=where)])
        if base_path in chain + (path,):
            cycle = " -> ".join(str(p) for p in chain + (path, base_path))
            raise RecipeError([RecipeIssue(("base",), f"base recipes form a cycle: {cycle}", where=where)])
        base_data, base_locations = load_file_with_bases(base_path, chain + (path,))
        merge_into(merged, base_data, locations)
        locations.update(base_locations)
    merge_into(merged, data, locations)
    locations.update(file_locations)
    return merged, locations


def parse_override(text: str) -> tuple[KeyPath, Any]:
    if "=" not in text:
        raise RecipeError([RecipeIssue((), f"override '{text}' must look like key.path=value", where="command line")])
    key, raw_value = text.split("=", 1)
    key = re.sub(r"\[(\d+)\]", r".\1", key.strip())  # model.losses[0].weight, as errors print it
    if not key or any(not part for part in key.split(".")):
        raise RecipeError([RecipeIssue((), f"override '{text}' has an empty key", where="command line")])
    path = tuple(int(part) if part.isdigit() else part for part in key.split("."))
    try:
        value = parse_yaml_value(raw_value) if raw_value != "" else ""
    except yaml.YAMLError:
        value = raw_value
    return path, value


def apply_override(data: dict[str, Any], text: str, locations: Locations) -> None:
    path, value = parse_override(text)
    where = f"command-line override '{text}'"
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        here = path[: depth + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise RecipeError([RecipeIssue(here, f"no list item {part} (the list has {len(node)})", where)])
            node = node[part]
        elif isinstance(node, dict):
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
        else:
            raise RecipeError([RecipeIssue(here, f"cannot set a key inside the value {node!r}", where)])
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise RecipeError([RecipeIssue(path, f"no list item {last} (the list has {len(node)})", where)])
        node[last] = value
    else:
        node[last] = value
    locations.drop_under(path)
    locations.set(path, where)


def load_raw_recipe(paths: list[str | Path], overrides: list[str] = ()) -> tuple[dict[str, Any], Locations]:
    """Merge the recipe files in order, then apply the overrides; no validation yet."""
    if not paths:
        raise RecipeError([RecipeIssue((), "no recipe file given")])
    merged: dict[str, Any] = {}
    locations = Locations()
    for path in paths:
        data, file_locations = load_file_with_bases(Path(path))
        merge_into(merged, data, locations)
        locations.update(file_locations)
    for text in overrides:
        apply_override(merged, text, locations)
    locations.set((), ", ".join(str(path) for path in paths))  # for problems no key can point at
    return merged, locations


__all__ = ["Locations", "load_raw_recipe", "format_path"]
