"""Command-line options checked like recipe values, before a command builds or writes anything: a bad
`--device`, `--name` or `--output-dir` is a RecipeError (exit code 2) naming the option."""

from __future__ import annotations

import os
from pathlib import Path


def output_folder_problem(folder: str) -> str | None:
    """Why runs cannot be written under `folder` (a file, or under one; not writable), or None."""
    path = Path(folder).expanduser()
    existing = next((parent for parent in (path, *path.parents) if parent.exists()), Path.cwd())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing} (permission denied)"
    return None


def check_options(*, device: str | None = None, name: str | None = None, output_dir: str | None = None) -> None:
    """Raise one RecipeError naming every bad option; return quietly when all are fine."""
    from trainer.recipe.errors import RecipeError, RecipeIssue

    problems = []
    if device is not None:
        from trainer.engine.device import device_problem  # imports torch: only when the option is given

        problems.append(("--device", device_problem(device)))
    if name is not None:
        from trainer.recipe.schema import RUN_NAME  # the rule of logging.name

        problems.append(("--name", RUN_NAME.problem(name)))
    if output_dir is not None:
        problems.append(("--output-dir", output_folder_problem(output_dir)))
    issues = [RecipeIssue((), problem, where=option) for option, problem in problems if problem is not None]
    if issues:
        raise RecipeError(issues)


def output_file_problem(out: str, *, force: bool) -> str | None:
    """Why `out` cannot be written as a new file (a folder; exists without --force; under a file), or None."""
    path = Path(out).expanduser()
    if path.is_dir():
        return f"{path} is a folder; give a file name"
    if path.exists() and not force:
        return f"{path} exists; not overwriting it (--force overwrites)"
    return output_folder_problem(str(path.parent))


def write_output_file(out: str, text: str, *, force: bool, option: str = "--out") -> Path:
    """Write `text` to `out` (parent folders created), after checking it; a bad path is a RecipeError."""
    from trainer.recipe.errors import RecipeError, RecipeIssue

    problem = output_file_problem(out, force=force)
    if problem is not None:
        raise RecipeError([RecipeIssue((), problem, where=option)])
    path = Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
