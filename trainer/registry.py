"""One small registry class; every pluggable kind of component has one instance.

Each registry declares, once, where its entries sit in a recipe (`recipe_paths`, `name_key`) and
which constructor arguments the trainer fills in itself (`filled_by_trainer`); validation, the JSON
Schema, `trainer docs` and `trainer new` read that declaration. Entries are registered when
`trainer.components.load_builtin_components()` imports the built-in modules by name, and when a
recipe's `imports:` (or the `trainer.plugins` entry-point group) imports user modules.
"""

from __future__ import annotations

import difflib
import inspect
import typing
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


def constructor_parameters(component: Any) -> dict[str, inspect.Parameter]:
    """The named parameters of a class's `__init__` or of a factory function (no self, *args, **kwargs)."""
    target = component.__init__ if inspect.isclass(component) else component
    parameters = dict(inspect.signature(target).parameters)
    parameters.pop("self", None)
    return {
        name: parameter
        for name, parameter in parameters.items()
        if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def constructor_hints(component: Any) -> dict[str, Any]:
    """The resolved type annotations of the constructor, `Annotated` constraints kept."""
    target = component.__init__ if inspect.isclass(component) else component
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation that cannot be resolved is simply not type-checked
        return {}


class Registry:
    """Maps names to components (classes or factory functions) plus free-form metadata.

    `recipe_paths`: dotted key paths of the recipe entries (`[]` marks a list of entries);
    `name_key`: the entry key that holds the name; `name_at`: the key path of the name when it sits
    outside the entries (datasets: `data.format` names the dataset of `data.train` and `data.val`);
    `filled_by_trainer`: constructor arguments the trainer passes itself, never written in a recipe.
    """

    def __init__(
        self,
        kind: str,
        *,
        title: str,
        recipe_paths: tuple[str, ...],
        name_key: str = "name",
        name_at: str | None = None,
        filled_by_trainer: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.title = title
        self.recipe_paths = recipe_paths
        self.name_key = name_key
        self.name_at = name_at
        self.filled_by_trainer = filled_by_trainer
        self._entries: dict[str, Any] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        def decorator(component: Any) -> Any:
            self.add(name, component, **meta)
            return component

        return decorator

    def add(self, name: str, component: Any, **meta: Any) -> None:
        if name in self._entries:
            first, second = (f"{getattr(c, '__module__', '?')}.{getattr(c, '__qualname__', c)}"
                             for c in (self._entries[name], component))
            raise ValueError(f"{self.kind} '{name}' is already registered by {first}; {second} cannot register "
                             "it again (choose another name)")
        self._entries[name] = component
        self._meta[name] = meta

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise UnknownNameError(kind=self.kind, name=name, choices=self.names())
        return self._entries[name]

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def options(self, name: str) -> dict[str, inspect.Parameter]:
        """The options a recipe may write for `name`: its constructor parameters less `filled_by_trainer`."""
        parameters = constructor_parameters(self.get(name))
        return {key: value for key, value in parameters.items() if key not in self.filled_by_trainer}

    def hints(self, name: str) -> dict[str, Any]:
        """The type annotations (with constraints) of `name`'s options."""
        options = self.options(name)
        return {key: hint for key, hint in constructor_hints(self.get(name)).items() if key in options}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


DATASETS = Registry("dataset", title="Datasets", recipe_paths=("data.train", "data.val"), name_key="format",
                    name_at="data.format",
                    filled_by_trainer=("task", "split"))
TRANSFORMS = Registry("transform", title="Transforms", recipe_paths=("augmentation.train[]", "augmentation.val[]"))
BACKBONES = Registry("backbone", title="Backbones", recipe_paths=("model.architecture.backbone",))
NECKS = Registry("neck", title="Necks", recipe_paths=("model.architecture.neck",),
                 filled_by_trainer=("in_channels", "in_strides"))
HEADS = Registry("head", title="Heads", recipe_paths=("model.architecture.head",),
                 filled_by_trainer=("in_channels", "in_strides", "num_classes"))
FULL_MODELS = Registry("model", title="Full models", recipe_paths=("model.architecture.full",),
                       filled_by_trainer=("num_classes",))
LOSSES = Registry("criterion", title="Losses", recipe_paths=("model.losses[]",), name_key="criterion")
OPTIMIZERS = Registry("optimizer", title="Optimizers", recipe_paths=("training.optimizer",),
                      filled_by_trainer=("params", "model", "task", "total_steps", "batch_size"))  # the last 4: auto
SCHEDULERS = Registry("scheduler", title="Schedulers", recipe_paths=("training.scheduler",),
                      filled_by_trainer=("optimizer", "steps_per_epoch", "epochs"))

REGISTRIES: dict[str, Registry] = {
    "datasets": DATASETS,
    "transforms": TRANSFORMS,
    "backbones": BACKBONES,
    "necks": NECKS,
    "heads": HEADS,
    "models": FULL_MODELS,
    "losses": LOSSES,
    "optimizers": OPTIMIZERS,
    "schedulers": SCHEDULERS,
}
