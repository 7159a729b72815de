"""Load recipe files (with `base:` chains), merge them in order (trainer/recipe/merge.py), apply
`key.path=value` overrides (trainer/recipe/overrides.py).

Files are read through the guarded reader (trainer/files.py); every key and value keeps where it
came from (file:line:col, or the override), so that errors can point at the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainer.files import FileReadError, compose_yaml, read_text
from trainer.recipe.errors import KeyPath, RecipeError, RecipeIssue, format_path
from trainer.recipe.locations import Locations
from trainer.recipe.merge import merge_into
from trainer.recipe.overrides import apply_override, parse_override
from trainer.recipe.yaml_loader import RecipeLoader, construct, parse_yaml_value


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


def _file_error(error: FileReadError) -> RecipeError:
    where = f"{error.path}:{error.line}" if error.line is not None else error.path
    return RecipeError([RecipeIssue((), error.problem, where=where)])


def read_yaml(path: Path) -> tuple[dict[str, Any], Locations]:
    """One recipe file as a mapping, with the location of each key; any problem is a RecipeError."""
    if not path.is_file():
        problem = "recipe file not found" if not path.exists() else "recipe path is not a file"
        raise RecipeError([RecipeIssue((), f"{problem}: {path}", where=str(path))])
    try:
        node = compose_yaml(read_text(path), path=path, loader=RecipeLoader)
        data = construct(node) if node is not None else {}
    except FileReadError as error:
        raise _file_error(error) from None
    except yaml.MarkedYAMLError as error:  # e.g. an unhashable key
        where = f"{path}:{error.problem_mark.line + 1}" if error.problem_mark else str(path)
        raise RecipeError([RecipeIssue((), f"invalid YAML: {error.problem}", where=where)]) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as error:  # e.g. a date that does not exist
        raise RecipeError([RecipeIssue((), f"invalid YAML: {error}", where=str(path))]) from None
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


def _base_paths(data: dict[str, Any], path: Path, locations: Locations) -> list[Path]:
    bases = data.pop("base", None)
    if bases is None:
        return []
    base_list = [bases] if isinstance(bases, str) else bases
    if not isinstance(base_list, list) or not all(isinstance(item, str) for item in base_list):
        raise RecipeError([RecipeIssue(("base",), "must be a path or a list of paths", locations.find(("base",)))])
    return [(path.parent / name).resolve() for name in base_list]


def load_file_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Locations]:
    """One recipe file, its `base:` (a path relative to the file, or a list of them) merged first."""
    path = path.resolve()
    data, file_locations = read_yaml(path)
    base_paths = _base_paths(data, path, file_locations)
    if not base_paths:
        merged: dict[str, Any] = {}
        merge_into(merged, data, Locations())  # drops the file's own `key: ~` entries
        return merged, file_locations
    merged, locations = {}, Locations()
    where = file_locations.find(("base",))
    for base_path in base_paths:
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


__all__ = ["Locations", "RecipeLoader", "format_path", "load_raw_recipe", "parse_override", "parse_yaml_value"]
