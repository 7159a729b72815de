"""Typed specs of what a validated recipe asks the builders for: a named component with its options
(`ComponentSpec`) and one `model.losses` entry (`LossSpec`); what `optimizer: auto` uses for a task or a
head (`AutoOptimizerDefaults`). Imports nothing from trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

LOSS_ENTRY_KEYS = ("criterion", "name", "weight", "exclude", "inputs")  # the rest of an entry: loss options


@dataclass(frozen=True)
class ComponentSpec:
    """`{name: ..., <options>}` of a recipe: a registered name and its constructor options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], *, name_key: str = "name") -> "ComponentSpec":
        return cls(name=entry[name_key], options={key: value for key, value in entry.items() if key != name_key})


@dataclass(frozen=True)
class LossSpec:
    """One `model.losses` entry: the criterion and its options, plus how the entry is combined."""

    criterion: str
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None  # label in the logs; default the criterion
    weight: float | Mapping[str, float] = 1.0  # multiplier, or one per part
    exclude: tuple[str, ...] = ()  # parts logged but not optimised
    inputs: Mapping[str, str] = field(default_factory=dict)  # criterion argument -> model output or batch field

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> "LossSpec":
        weight = entry.get("weight")
        return cls(
            criterion=entry["criterion"],
            options={key: value for key, value in entry.items() if key not in LOSS_ENTRY_KEYS},
            name=entry.get("name"),
            weight=1.0 if weight is None else weight,
            exclude=tuple(entry.get("exclude") or ()),
            inputs=dict(entry.get("inputs") or {}),
        )


@dataclass(frozen=True)
class AutoOptimizerDefaults:
    """What `auto` uses for a task (a `Task` class attribute) or a head that trains differently
    (e.g. the anchor-based RetinaNet head): AdamW (lr, weight decay) for short schedules, SGD
    (lr per image, weight decay) for long ones (lr = per-image lr * batch size)."""

    adamw: tuple[float, float]
    sgd_per_image: tuple[float, float]
    label: str
