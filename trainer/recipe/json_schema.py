"""A JSON Schema for recipes, generated from the dataclass schema and the registries.

Editors use it for completion and checks while typing (the shipped recipes start with
`# yaml-language-server: $schema=../../docs/recipe.schema.json`). Component names are enums;
each component's options come from its constructor signature under an if/then keyed on its name.
The schema is lenient where merging makes a single file incomplete on purpose (a `base:` recipe
or split files): it requires nothing that a mapping merge could supply. `trainer check` remains
the full check.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from typing import Any

from trainer.constraints import constraints_of
from trainer.recipe.field_docs import EXTRA_KEYS_HELP, FIELD_HELP
from trainer.recipe.loss_entries import ENTRY_TYPES
from trainer.recipe.schema import Recipe
from trainer.registry import (
    BACKBONES,
    DATASETS,
    FULL_MODELS,
    HEADS,
    LOSSES,
    NECKS,
    OPTIMIZERS,
    SCHEDULERS,
    TRANSFORMS,
    Registry,
)

DRAFT = "http://json-schema.org/draft-07/schema#"  # the draft editors support best
_SIMPLE = {int: "integer", float: "number", bool: "boolean", str: "string", type(None): "null"}
NO_DEFAULT = object()
TYPE_SPECIFIC_KEYWORDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern"}

# each kind of named component in the definitions, by its registry
COMPONENTS = {
    "backbone": BACKBONES,
    "neck": NECKS,
    "head": HEADS,
    "full": FULL_MODELS,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "transform": TRANSFORMS,
}
LOSS_ENTRY_HELP = {
    "name": "name of this loss in the logs (default: the criterion)",
    "weight": "multiplier of this loss in the total, or one per part; ~ means 1.0",
    "exclude": "parts logged but not optimised",
    "inputs": "remap the loss's inputs: {input name: model output or batch field}",
}


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a Python type annotation with its constraints (unknown classes allow anything)."""
    annotation, constraints = constraints_of(annotation)
    schema = _bare_type_schema(annotation)
    for constraint in constraints:
        schema.update(constraint.json_schema())
    return schema


def _bare_type_schema(annotation: Any) -> dict[str, Any]:
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [type_schema(arg) for arg in args]
        extras = [{k: v for k, v in option.items() if k != "type"} for option in options]
        constrained = [extra for extra in extras if extra]
        if all("type" in option for option in options) and (
            not constrained or (len(constrained) == 1 and set(constrained[0]) <= TYPE_SPECIFIC_KEYWORDS)
        ):  # bounds and patterns only apply to values of their own type: one list of types keeps them
            return {"type": [option["type"] for option in options], **(constrained[0] if constrained else {})}
        return {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple) or annotation in (list, tuple):
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if origin is dict or annotation is dict:
        if len(args) == 2 and args[1] is not Any:
            return {"type": "object", "additionalProperties": type_schema(args[1])}
        return {"type": "object"}
    return {}


def _json_default(value: Any) -> Any:
    """A default as JSON, or NO_DEFAULT when it has no JSON form."""
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return NO_DEFAULT
    return value


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n\n")[0].replace("\n", " ").strip()


def _option_schemas(registry: Registry, name: str) -> tuple[dict[str, Any], list[str]]:
    """Each option's schema (type, constraints and default) and the options without a default."""
    hints = registry.hints(name)
    options: dict[str, Any] = {}
    required = []
    for option, parameter in registry.options(name).items():
        schema = type_schema(hints.get(option, Any))
        if parameter.default is inspect.Parameter.empty:
            required.append(option)
        elif _json_default(parameter.default) is not NO_DEFAULT:
            schema["default"] = _json_default(parameter.default)
        options[option] = schema
    return options, required


def component_schema(
    *, registry: Registry, entry_properties: dict[str, Any] | None = None, in_list: bool = False,
) -> dict[str, Any]:
    """`{name: ..., <options>}`: the name from the registry, the options of that name's constructor.

    In a list (transforms, losses) an entry is replaced whole, so it needs its name and its
    required options; a mapping may get them from a base recipe, so nothing is required there."""
    entry_properties = entry_properties or {}
    name_key = registry.name_key
    names = registry.names()
    branches, all_options, descriptions = [], {}, []
    for name in names:
        component = registry.get(name)
        options, required = _option_schemas(registry, name)
        all_options.update({option: {} for option in options})
        description = _first_line(inspect.getdoc(component))
        heads = registry.meta(name).get("heads")
        if heads:
            description += " Trains: " + "; ".join(f"{task}: {', '.join(h)}" for task, h in heads.items()) + "."
        descriptions.append(description.strip())
        then: dict[str, Any] = {
            "properties": {name_key: {"const": name}, **entry_properties, **options},
            "additionalProperties": False,
        }
        if description.strip():
            then["description"] = description.strip()
        if in_list and required:
            then["required"] = required
        branches.append({"if": {"properties": {name_key: {"const": name}}, "required": [name_key]}, "then": then})
    name_schema = {"enum": names, "enumDescriptions": descriptions, "description": f"a registered {registry.kind}"}
    without_name = {
        "properties": {name_key: name_schema, **entry_properties, **all_options}, "additionalProperties": False,
    }
    branches.append({"if": {"not": {"required": [name_key]}}, "then": without_name})
    schema: dict[str, Any] = {"type": "object", "properties": {name_key: name_schema}, "allOf": branches}
    if in_list:
        schema["required"] = [name_key]
    return schema


def _special(path: tuple[str, ...]) -> dict[str, Any] | None:
    """Fields whose values are registry names or named components."""
    if path == ("data", "format"):
        return {"enum": DATASETS.names()}
    if path in (("augmentation", "train"), ("augmentation", "val")):
        return {"type": "array", "items": {"$ref": "#/definitions/transform"}}
    if path[:2] == ("model", "architecture") and len(path) == 3:
        return {"$ref": f"#/definitions/{path[2]}"}  # these definitions also allow null
    if path == ("model", "losses"):
        return {"type": "array", "items": {"$ref": "#/definitions/loss"}}
    if path in (("training", "optimizer"), ("training", "scheduler")):
        return {"$ref": f"#/definitions/{path[1]}"}
    return None


def dataclass_schema(cls: type, path: tuple[str, ...]) -> dict[str, Any]:
    """A schema dataclass: each field's type, constraints, default and help text (field_docs.py)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    defaults = cls()
    properties = {}
    for field in dataclasses.fields(cls):
        here = path + (field.name,)
        annotation = hints[field.name]
        if dataclasses.is_dataclass(annotation):
            prop = dataclass_schema(annotation, here)
        else:
            prop = _special(here) or type_schema(annotation)
            default = _json_default(getattr(defaults, field.name))
            if default is not NO_DEFAULT:
                prop["default"] = default
        help_text = FIELD_HELP.get(".".join(here))
        if help_text:
            prop["description"] = help_text
        properties[field.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        schema["description"] = _first_line(cls.__doc__)
    return schema


def _dataset_options(schema: dict[str, Any]) -> None:
    """data.train / data.val hold the options of the dataset that data.format names."""
    data = schema["properties"]["data"]
    data["allOf"] = []
    for name in DATASETS.names():
        options, _ = _option_schemas(DATASETS, name)
        split = {"type": "object", "properties": options, "additionalProperties": False}
        data["allOf"].append({
            "if": {"properties": {"format": {"const": name}}, "required": ["format"]},
            "then": {"properties": {"train": split, "val": split}},
        })


def recipe_json_schema() -> dict[str, Any]:
    """The whole schema (registries must be loaded: `load_builtin_components()`)."""
    schema = dataclass_schema(Recipe, ())
    _dataset_options(schema)
    schema["properties"] = {
        "base": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": EXTRA_KEYS_HELP["base"],
        },
        **schema["properties"],
    }
    defs = {kind: component_schema(registry=registry, in_list=kind == "transform")
            for kind, registry in COMPONENTS.items()}
    for kind in ("backbone", "neck", "head", "full"):
        defs[kind]["type"] = ["object", "null"]
    entry_properties = {key: {**type_schema(ENTRY_TYPES[key]), "description": text}
                        for key, text in LOSS_ENTRY_HELP.items()}
    defs["loss"] = component_schema(registry=LOSSES, entry_properties=entry_properties, in_list=True)
    return {
        "$schema": DRAFT,
        "title": "trainer recipe",
        "description": "Generated by `trainer schema`; lists the built-in components (and those of --import).",
        **schema,
        "definitions": defs,
    }


def schema_text() -> str:
    return json.dumps(recipe_json_schema(), indent=2) + "\n"
