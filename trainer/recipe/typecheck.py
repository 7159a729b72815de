"""Check plain YAML values against type annotations, collecting every problem found."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable

from trainer.constraints import constraints_of, non_finite
from trainer.recipe.errors import KeyPath
from trainer.registry import closest_name

Report = Callable[[KeyPath, str], None]

_SIMPLE = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def describe(annotation: Any) -> str:
    annotation, _ = constraints_of(annotation)
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if arg is type(None) else describe(arg) for arg in args)
    if origin in (list, tuple):
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin is dict or annotation is dict:
        return "a mapping"
    if origin is typing.Literal:
        return " or ".join(repr(arg) for arg in args)
    if dataclasses.is_dataclass(annotation):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def _matches_simple(value: Any, annotation: Any) -> bool:
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True


def check_value(value: Any, annotation: Any, path: KeyPath, report: Report) -> None:
    """Report at `path` every place where `value` does not fit `annotation` (its type, its
    `Annotated` constraints, and finiteness of every number)."""
    if non_finite(value):
        report(path, f"must be a finite number, got {value}")
        return
    bare, constraints = constraints_of(annotation)
    if bare is not annotation:
        problems: list[tuple[KeyPath, str]] = []
        check_value(value, bare, path, lambda p, m: problems.append((p, m)))
        for problem_path, message in problems:
            report(problem_path, message)
        if not problems:
            for constraint in constraints:
                message = constraint.problem(value)
                if message:
                    report(path, message)
        return
    if annotation is Any or annotation is typing.Any or annotation is object:
        _check_finite_inside(value, path, report)
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        _check_union(value, annotation, [arg for arg in args if arg is not type(None)], path, report)
        return
    if origin is typing.Literal:
        if value not in args:
            report(path, f"expected {describe(annotation)}, got {value!r}")
        return
    if dataclasses.is_dataclass(annotation):
        check_dataclass(value, annotation, path, report)
        return
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, list):
            report(path, f"expected {describe(annotation)}, got {value!r}")
            return
        if args:
            for index, item in enumerate(value):
                check_value(item, args[0], path + (index,), report)
        return
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            report(path, f"expected a mapping, got {value!r}")
            return
        if len(args) == 2:
            for key, item in value.items():
                check_value(item, args[1], path + (key,), report)
        return
    if annotation in _SIMPLE and not _matches_simple(value, annotation):
        report(path, f"expected {describe(annotation)}, got {value!r}")


def _check_union(value: Any, annotation: Any, candidates: list[Any], path: KeyPath, report: Report) -> None:
    """Fits one candidate; else the problems of the candidate whose type fits (a constraint failed),
    or of the only candidate, or one "expected A or B"."""
    found: list[list[tuple[KeyPath, str]]] = []
    for candidate in candidates:
        problems: list[tuple[KeyPath, str]] = []
        check_value(value, candidate, path, lambda p, m, problems=problems: problems.append((p, m)))
        if not problems:
            return
        found.append(problems)
    typed = [problems for problems in found if not any(m.startswith("expected") for _, m in problems)]
    if len(candidates) == 1 or typed:
        for problem_path, message in (typed or found)[0]:
            report(problem_path, message)
    else:
        report(path, f"expected {describe(annotation)}, got {value!r}")


def _check_finite_inside(value: Any, path: KeyPath, report: Report) -> None:
    """Untyped values (`Any`) still hold only finite numbers."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_value(item, Any, path + (key,), report)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_value(item, Any, path + (index,), report)


def check_dataclass(value: Any, schema: type, path: KeyPath, report: Report) -> None:
    if not isinstance(value, dict):
        report(path, f"expected a mapping, got {value!r}")
        return
    hints = typing.get_type_hints(schema, include_extras=True)
    names = [f.name for f in dataclasses.fields(schema)]
    for key, item in value.items():
        if key not in names:
            suggestion = closest_name(str(key), names)
            hint = f"; did you mean '{suggestion}'?" if suggestion else f" (valid keys: {', '.join(names)})"
            report(path + (key,), f"unknown key '{key}'{hint}")
            continue
        check_value(item, hints[key], path + (key,), report)
