"""Check a named component's recipe options against its registry's declaration and its constructor's
signature (types and `Annotated` constraints)."""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

from trainer.recipe.errors import KeyPath
from trainer.recipe.typecheck import Report, check_value
from trainer.registry import Registry, UnknownNameError, closest_name


def check_options(
    *, registry: Registry, name: str, options: dict[str, Any], path: KeyPath, report: Report,
) -> None:
    """Unknown options (with the closest valid one), wrong types or values, and missing required options."""
    component_name = f"{registry.kind} '{name}'"
    parameters = registry.options(name)
    hints = registry.hints(name)
    valid = list(parameters)
    for key, value in options.items():
        if key not in parameters:
            suggestion = closest_name(str(key), valid)
            hint = f"; did you mean '{suggestion}'?" if suggestion else f" (options: {', '.join(valid) or 'none'})"
            report(path + (key,), f"unknown option '{key}' of {component_name}{hint}")
        else:
            check_value(value, hints.get(key, Any), path + (key,), report)
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in options:
            report(path, f"{component_name} needs the option '{key}'")


def lookup(registry: Registry, name: Any, path: KeyPath, report: Report) -> Any | None:
    """The registered component, or None after reporting the unknown name."""
    if not isinstance(name, str):
        report(path, f"expected a {registry.kind} name, got {name!r}")
        return None
    try:
        return registry.get(name)
    except UnknownNameError as error:
        report(path, error.message())
        return None


def check_named_component(
    *, registry: Registry, entry: Any, path: KeyPath, report: Report, reserved: tuple[str, ...] = (),
) -> Any | None:
    """An entry `{<registry.name_key>: ..., <options>}`: the name exists and the options fit its
    signature; `reserved` keys belong to the entry, not to the component."""
    name_key = registry.name_key
    if not isinstance(entry, dict):
        report(path, f"expected a mapping with '{name_key}', got {entry!r}")
        return None
    if name_key not in entry:
        report(path, f"missing '{name_key}' (one of: {', '.join(registry.names())})")
        return None
    component = lookup(registry, entry[name_key], path + (name_key,), report)
    if component is None:
        return None
    requires = registry.meta(entry[name_key]).get("requires")  # an optional extra, e.g. the timm backbone
    if requires and importlib.util.find_spec(requires) is None:
        install = registry.meta(entry[name_key]).get("install", f"pip install {requires}")
        report(path + (name_key,), f"{registry.kind} '{entry[name_key]}' needs the {requires} package: {install}")
        return None
    options = {key: value for key, value in entry.items() if key != name_key and key not in reserved}
    check_options(registry=registry, name=entry[name_key], options=options, path=path, report=report)
    return component
