"""`trainer schema [--out F] [--import MODULE]`: the recipe JSON Schema, printed or written to a new file."""

from __future__ import annotations

from pathlib import Path

from trainer.components import load_builtin_components
from trainer.output_files import output_file_problem, write_output_file
from trainer.plugins import import_plugin
from trainer.recipe import RecipeError, RecipeIssue
from trainer.recipe.json_schema import schema_text


def schema_command(*, out: str | None = None, imports: list[str] = (), force: bool = False) -> str:
    """Load the registries (and the --import modules), then return the schema; write it to `out` if given."""
    if out is not None and (problem := output_file_problem(out, force=force)) is not None:
        raise RecipeError([RecipeIssue((), problem, where="--out")])  # before the work
    load_builtin_components()
    problems = [(module, import_plugin(module, folders=[Path.cwd()])) for module in imports]
    issues = [RecipeIssue((), problem, where="--import") for module, problem in problems if problem is not None]
    if issues:
        raise RecipeError(issues)
    text = schema_text()
    if out is not None:
        write_output_file(out, text, force=force)
    return text
