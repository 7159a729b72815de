"""User data files (annotation JSON, label files, data yamls, class lists) through the one guarded
reader `trainer.files`: every problem reading or parsing one is a DataError naming the file[:line]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer import files
from trainer.data.errors import DataError


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (label file, image list)."""
    try:
        return files.read_text(path)
    except files.FileReadError as error:
        raise DataError(str(error)) from None


def read_lines(path: str | Path) -> list[str]:
    """Non-empty, stripped lines of a text file (class lists, image lists)."""
    try:
        return files.read_lines(path)
    except files.FileReadError as error:
        raise DataError(str(error)) from None


def read_json(path: str | Path) -> Any:
    """A parsed JSON file (COCO instances)."""
    try:
        return files.load_json(path)
    except files.FileReadError as error:
        raise DataError(str(error)) from None


def read_yaml(path: str | Path) -> Any:
    """A parsed YAML file (Ultralytics data yaml), with the guarded reader's size, alias and nesting limits."""
    try:
        return files.load_yaml(path)
    except files.FileReadError as error:
        raise DataError(str(error)) from None
