"""Structural checks of parsed annotation files: the type of every field used, with the path of
the bad entry (`instances.json: annotations[17].bbox: expected 4 numbers, got "x"`).

Each `expect_*` returns the value in the wanted type or raises a DataError whose message starts
with `where` (the file and the entry); `Problems` collects several of them into one DataError."""

from __future__ import annotations

import json
import math
from typing import Any

from trainer.data.errors import DataError

MAX_SHOWN = 10  # problems listed in one error; the rest are counted


def shown(value: Any, *, limit: int = 60) -> str:
    """A short JSON-like rendering of a value for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(where: str, expected: str, value: Any) -> DataError:
    return DataError(f"{where}: expected {expected}, got {shown(value)}")


def expect_mapping(value: Any, *, where: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(where, "a mapping", value)
    return value


def expect_list(value: Any, *, where: str) -> list:
    if not isinstance(value, list):
        raise _fail(where, "a list", value)
    return value


def expect_str(value: Any, *, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, "a non-empty string", value)
    return value


def expect_number(value: Any, *, where: str, minimum: float | None = None) -> float:
    """A finite int or float (not a bool), at least `minimum` when given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(where, "a finite number", value)
    if minimum is not None and value < minimum:
        raise _fail(where, f"a number >= {minimum:g}", value)
    return float(value)


def expect_int(value: Any, *, where: str, minimum: int | None = None) -> int:
    """An integer (a float with an integer value counts: some tools write ids as 3.0)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, "an integer", value)
    if minimum is not None and value < minimum:
        raise _fail(where, f"an integer >= {minimum}", value)
    return value


def expect_numbers(value: Any, *, count: int, where: str) -> list[float]:
    """A list of exactly `count` finite numbers."""
    if (
        not isinstance(value, list)
        or len(value) != count
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise _fail(where, f"{count} numbers", value)
    return [float(v) for v in value]


class Problems:
    """Collects DataErrors so that every problem of a file or data set is reported together."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, error: DataError | str) -> None:
        self.messages.append(str(error))

    def __bool__(self) -> bool:
        return bool(self.messages)

    def raise_if_any(self) -> None:
        """One DataError: each problem on its own line (the first MAX_SHOWN, then a count)."""
        if not self.messages:
            return
        lines = self.messages[:MAX_SHOWN]
        if len(self.messages) > MAX_SHOWN:
            lines.append(f"... and {len(self.messages) - MAX_SHOWN} more problem(s) of the same kind")
        raise DataError("\n".join(lines))
