"""`trainer list [kind]`: the names each registry holds (kinds without entries are left out)."""

from __future__ import annotations

from rich.table import Table

from trainer.components import load_builtin_components
from trainer.engine.reporting import console
from trainer.recipe import RecipeError, RecipeIssue
from trainer.registry import REGISTRIES, closest_name


def listed_names(kind: str) -> str:
    """The cell of one kind; `models` also names the backbones (a model is a backbone or a full model)."""
    names = ", ".join(REGISTRIES[kind].names())
    if kind == "models":
        return f"backbones: {', '.join(REGISTRIES['backbones'].names())}\nfull: {names}"
    return names or "(none registered)"


def list_command(kind: str | None) -> None:
    load_builtin_components()
    if kind is not None and kind not in REGISTRIES:
        suggestion = closest_name(kind, list(REGISTRIES))
        hint = f"; did you mean '{suggestion}'?" if suggestion else ""
        raise RecipeError([RecipeIssue((), f"unknown kind '{kind}'{hint} (kinds: {', '.join(REGISTRIES)})",
                                       where="trainer list")])
    kinds = [kind] if kind else [name for name, registry in REGISTRIES.items() if len(registry)]
    table = Table(title="registered components")
    table.add_column("kind")
    table.add_column("names")
    for name in kinds:
        table.add_row(name, listed_names(name))
    console.print(table)
    for name in kinds:  # e.g. how to list the models behind one entry (backbone `timm`)
        registry = REGISTRIES[name]
        for entry in registry.names():
            if registry.meta(entry).get("note"):
                console.print(registry.meta(entry)["note"], markup=False, highlight=False)
