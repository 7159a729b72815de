"""`trainer list [kind]`: the names each registry holds."""

from __future__ import annotations

from rich.table import Table

from trainer.components import load_builtin_components
from trainer.engine.reporting import console
from trainer.recipe import RecipeError, RecipeIssue
from trainer.registry import REGISTRIES, closest_name


def list_command(kind: str | None) -> None:
    load_builtin_components()
    if kind is not None and kind not in REGISTRIES:
        suggestion = closest_name(kind, list(REGISTRIES))
        hint = f"; did you mean '{suggestion}'?" if suggestion else ""
        raise RecipeError([RecipeIssue((), f"unknown kind '{kind}'{hint} (kinds: {', '.join(REGISTRIES)})",
                                       where="trainer list")])
    kinds = [kind] if kind else list(REGISTRIES)
    table = Table(title="registered components")
    table.add_column("kind")
    table.add_column("names")
    for name in kinds:
        if name == "models":
            table.add_row("models", "backbones: " + ", ".join(REGISTRIES["backbones"].names())
                          + "\nfull: " + ", ".join(REGISTRIES["models"].names()))
        else:
            table.add_row(name, ", ".join(REGISTRIES[name].names()))
    console.print(table)
