"""The YAML loader of recipes and command-line override values."""

from __future__ import annotations

import re
from typing import Any

import yaml


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` and `1.0e3` as numbers (YAML 1.1 would keep them strings)."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml_value(text: str) -> Any:
    """One YAML value as a recipe file would read it."""
    return yaml.load(text, Loader=RecipeLoader)


def construct(node: yaml.Node) -> Any:
    """The Python value of a composed (and already checked) YAML node."""
    loader = RecipeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()
