"""The YAML loader of recipes and command-line override values."""

from __future__ import annotations

import re
from typing import Any

import yaml

from trainer.files import FileReadError, compose_yaml


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` and `1.0e3` as numbers (YAML 1.1 would keep them strings)."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml_value(text: str, *, source: str = "YAML text") -> Any:
    """One YAML value as a recipe file would read it, within the guarded reader's limits: text that is
    not YAML raises yaml.YAMLError; aliases that refer to themselves or expand too far, or nesting too
    deep, raise FileReadError naming `source`."""
    try:
        node = compose_yaml(text, path=source, loader=RecipeLoader)
    except FileReadError as error:
        if error.problem.startswith("invalid YAML"):
            raise yaml.YAMLError(error.problem) from None
        raise
    return construct(node) if node is not None else None


def construct(node: yaml.Node) -> Any:
    """The Python value of a composed (and already checked) YAML node."""
    loader = RecipeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()
