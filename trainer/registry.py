"""One small registry class; every pluggable kind of component has one instance.

Registration is explicit: each package's ``__init__`` imports its modules by name, and a recipe's
``imports:`` list (or the ``trainer.plugins`` entry-point group) imports user modules.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterator


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message names the closest valid name."""

    def __init__(self, *, kind: str, name: str, choices: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = choices
        self.suggestion = closest_name(name, choices)
        super().__init__(self.message())

    def message(self) -> str:
        hint = f"; did you mean '{self.suggestion}'?" if self.suggestion else ""
        return f"unknown {self.kind} '{self.name}'{hint} (choices: {', '.join(sorted(self.choices))})"

    def __str__(self) -> str:
        return self.message()


def closest_name(name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest valid name by edit similarity, or by prefix (``focal`` -> ``focal_loss``)."""
    choices = list(choices)
    matches = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    prefixed = [choice for choice in choices if choice.startswith(str(name)) or str(name).startswith(choice)]
    return prefixed[0] if len(prefixed) == 1 else None


class Registry:
    """Maps names to components (classes or factory functions) plus free-form metadata."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        def decorator(component: Any) -> Any:
            self.add(name, component, **meta)
            return component

        return decorator

    def add(self, name: str, component: Any, **meta: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered (by {self._entries[name]!r})")
        self._entries[name] = component
        self._meta[name] = meta

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise UnknownNameError(kind=self.kind, name=name, choices=self.names())
        return self._entries[name]

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
BACKBONES = Registry("backbone")
NECKS = Registry("neck")
HEADS = Registry("head")
FULL_MODELS = Registry("model")
LOSSES = Registry("criterion")
METRICS = Registry("metric")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")

REGISTRIES: dict[str, Registry] = {
    "datasets": DATASETS,
    "transforms": TRANSFORMS,
    "backbones": BACKBONES,
    "necks": NECKS,
    "heads": HEADS,
    "models": FULL_MODELS,
    "losses": LOSSES,
    "metrics": METRICS,
    "optimizers": OPTIMIZERS,
    "schedulers": SCHEDULERS,
}
