"""Check a named component's recipe options against its constructor's signature."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from trainer.recipe.errors import KeyPath
from trainer.recipe.typecheck import Report, check_value
from trainer.registry import Registry, UnknownNameError, closest_name


def constructor_parameters(component: Any) -> dict[str, inspect.Parameter]:
    target = component.__init__ if inspect.isclass(component) else component
    parameters = dict(inspect.signature(target).parameters)
    parameters.pop("self", None)
    return {
        name: parameter
        for name, parameter in parameters.items()
        if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def constructor_hints(component: Any) -> dict[str, Any]:
    target = component.__init__ if inspect.isclass(component) else component
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation that cannot be resolved is simply not type-checked
        return {}


def option_names(component: Any, *, injected: tuple[str, ...] = ()) -> list[str]:
    return [name for name in constructor_parameters(component) if name not in injected]


def check_options(
    *,
    component: Any,
    component_name: str,
    options: dict[str, Any],
    path: KeyPath,
    report: Report,
    injected: tuple[str, ...] = (),
) -> None:
    """Unknown options (with the closest valid one), wrong types, and missing required options."""
    parameters = constructor_parameters(component)
    hints = constructor_hints(component)
    valid = [name for name in parameters if name not in injected]
    for key, value in options.items():
        if key not in valid:
            suggestion = closest_name(str(key), valid)
            hint = f"; did you mean '{suggestion}'?" if suggestion else f" (options: {', '.join(valid) or 'none'})"
            report(path + (key,), f"unknown option '{key}' of {component_name}{hint}")
        elif key in hints:
            check_value(value, hints[key], path + (key,), report)
    for name in valid:
        if parameters[name].default is inspect.Parameter.empty and name not in options:
            report(path, f"{component_name} needs the option '{name}'")


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
    *,
    registry: Registry,
    entry: Any,
    path: KeyPath,
    report: Report,
    name_key: str = "name",
    reserved: tuple[str, ...] = (),
    injected: tuple[str, ...] = (),
) -> Any | None:
    """An entry `{name: ..., <options>}`: the name exists and the options fit its signature."""
    if not isinstance(entry, dict):
        report(path, f"expected a mapping with '{name_key}', got {entry!r}")
        return None
    if name_key not in entry:
        report(path, f"missing '{name_key}' (one of: {', '.join(registry.names())})")
        return None
    component = lookup(registry, entry[name_key], path + (name_key,), report)
    if component is None:
        return None
    options = {key: value for key, value in entry.items() if key != name_key and key not in reserved}
    check_options(
        component=component,
        component_name=f"{registry.kind} '{entry[name_key]}'",
        options=options,
        path=path,
        report=report,
        injected=injected,
    )
    return component
