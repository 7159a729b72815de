"""Output paths a user names (`--out`, `--output-dir`): checked before the work, written without
overwriting an existing file unless asked (`--force`), parent folders created. Imports nothing
from trainer at module level."""

from __future__ import annotations

import os
from pathlib import Path


def output_folder_problem(folder: str) -> str | None:
    """Why nothing can be written under `folder` (a file, or under one; not writable), or None."""
    path = Path(folder).expanduser()
    existing = next((parent for parent in (path, *path.parents) if parent.exists()), Path.cwd())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing} (permission denied)"
    return None


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
