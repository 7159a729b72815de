"""Class names as a recipe gives them: a list, or the path of a text file with one name per line."""

from __future__ import annotations

from pathlib import Path

from trainer.data.errors import DataError
from trainer.data.reading import read_lines


def check_names(names: list[str], *, source: str) -> list[str]:
    """At least one name, no name twice; `source` names where the list came from."""
    if not names:
        raise DataError(f"{source}: no class names (write one name per line, index 0 first)")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise DataError(f"{source}: class name '{name}' appears twice (entries {seen[name]} and {index})")
        seen[name] = index
    return names


def read_class_file(path: str | Path) -> list[str]:
    """A class list file: one name per line, blank lines skipped."""
    return check_names(read_lines(path), source=str(path))


def resolve_class_names(value: list[str] | str | None, *, root: str | Path | None = None) -> list[str] | None:
    """The recipe's `class_names` option as a list (None stays None). A string is a class list file,
    relative to the working folder, or else to `root` when the file is there."""
    if value is None:
        return None
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute() and not path.exists() and root is not None and (Path(root) / path).is_file():
            path = Path(root) / path
        return read_class_file(path)
    return check_names([str(name) for name in value], source="class_names")
