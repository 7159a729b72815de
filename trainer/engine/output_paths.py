"""Output paths checked before a command does its work: the target may be written (its folder is
a folder, or can be made, and takes a file), and an existing file is kept unless `force`. A problem
is a usage error naming the option (exit code 2), raised before any work; nothing is created here
(the command makes missing folders when it writes)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trainer.recipe import RecipeError, RecipeIssue


def _refuse(message: str, option: str) -> RecipeError:
    return RecipeError([RecipeIssue((), message, where=option)])


def _writable_folder(folder: Path, option: str) -> None:
    """`folder`, or its nearest existing ancestor, takes new files: probed by writing one and removing
    it (permissions alone mislead, e.g. for root or on a read-only file system)."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise _refuse(f"cannot write under {folder}: {existing} is a file, not a folder", option)
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as error:
        raise _refuse(f"cannot write into {existing}: {error.strerror or error}", option) from None


def output_file(path: Path, *, option: str, force: bool) -> Path:
    """`path` ready to be written: not a folder, not an existing file unless `force`, its folder writable."""
    if path.is_dir():
        raise _refuse(f"{path} is a folder; give a file name", option)
    if path.exists() and not force:
        raise _refuse(f"{path} exists; add --force to overwrite it", option)
    if path.exists() and not os.access(path, os.W_OK):
        raise _refuse(f"{path} is read-only", option)
    _writable_folder(path.parent, option)
    return path


def output_folder(path: Path, *, option: str, force: bool, keeps: tuple[str, ...] = ()) -> Path:
    """`path` as a writable folder (existing or to be made); an existing file named in `keeps` inside
    it is kept unless `force`."""
    if path.exists() and not path.is_dir():
        raise _refuse(f"{path} is a file; give a folder", option)
    taken = [name for name in keeps if (path / name).exists()]
    if taken and not force:
        raise _refuse(f"{path} already holds {', '.join(taken)}; add --force to overwrite", option)
    _writable_folder(path, option)
    return path
