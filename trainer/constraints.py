"""Constraints on option values, declared once in type annotations next to each component
(`lr: Annotated[float, Range(gt=0)]`) and in the recipe schema; `trainer check` and the JSON Schema
read them. Every number in a recipe must also be finite (checked for all `float` and `int` values).
Imports nothing from trainer."""

from __future__ import annotations

import difflib
import math
import re
import typing
from dataclasses import dataclass
from typing import Any

UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class Range:
    """A number within bounds: `ge`/`gt` below, `le`/`lt` above (None = unbounded)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None  # the type check reports it
        failed = ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                  or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))
        return f"must be {self.describe()}, got {value}" if failed else None

    def describe(self) -> str:
        low = f">= {self.ge}" if self.ge is not None else f"> {self.gt}" if self.gt is not None else None
        high = f"<= {self.le}" if self.le is not None else f"< {self.lt}" if self.lt is not None else None
        if low and high:
            opening = "[" if self.ge is not None else "("
            closing = "]" if self.le is not None else ")"
            lower = self.ge if self.ge is not None else self.gt
            upper = self.le if self.le is not None else self.lt
            return f"in {opening}{lower}, {upper}{closing}"
        return low or high or "a number"

    def json_schema(self) -> dict[str, Any]:
        keys = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
        return {keys[name]: getattr(self, name) for name in keys if getattr(self, name) is not None}


@dataclass(frozen=True)
class Choice:
    """One of the given values."""

    values: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.values:
            return None
        close = difflib.get_close_matches(str(value), [str(v) for v in self.values], n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        shown = f"'{value}'" if isinstance(value, str) else repr(value)
        return f"must be one of {', '.join(map(str, self.values))}, got {shown}{hint}"

    def json_schema(self) -> dict[str, Any]:
        return {"enum": list(self.values)}


@dataclass(frozen=True)
class Pattern:
    """A string that fully matches a regular expression; `text` says what it means in words."""

    regex: str
    text: str

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or re.fullmatch(self.regex, value):
            return None
        return f"must be {self.text}, got {value!r}"

    def json_schema(self) -> dict[str, Any]:
        return {"pattern": f"^({self.regex})$"}


Constraint = Range | Choice | Pattern

# the common ones, by meaning
Positive = Range(gt=0)
NonNegative = Range(ge=0)
AtLeastOne = Range(ge=1)
Probability = Range(ge=0, le=1)
Fraction = Range(ge=0, lt=1)  # e.g. Adam betas
Seed = Range(ge=0, le=UINT64_MAX)


def constraints_of(annotation: Any) -> tuple[Any, list[Constraint]]:
    """(the bare type, the constraints) of a possibly `Annotated` type."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, [extra for extra in extras if isinstance(extra, (Range, Choice, Pattern))]
    return annotation, []


def non_finite(value: Any) -> bool:
    """True for NaN and infinities."""
    return isinstance(value, float) and not math.isfinite(value)
