"""Combines the recipe's `model.losses` list into one objective.

total = sum over entries and parts of weight * part, except excluded parts (logged only). Every
part is reported as `<name>/<part>`; two entries with the same criterion get distinct names.

`defaults` (from the task, e.g. segmentation's `{"ignore_index": 255}`) fill options that a
criterion's constructor accepts and the recipe entry leaves out; an option the entry sets wins.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainer.registry import LOSSES
from trainer.specs import LossSpec


@dataclass
class LossEntry:
    name: str
    criterion: nn.Module
    weight: float | dict[str, float] = 1.0
    exclude: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)  # criterion argument -> context key
    arguments: dict[str, bool] = field(default_factory=dict)  # criterion argument -> required?

    def source(self, argument: str) -> str:
        return self.inputs.get(argument, argument)

    def part_weight(self, part: str) -> float:
        if isinstance(self.weight, dict):
            return float(self.weight.get(part, 1.0))
        return float(self.weight)


def forward_arguments(criterion: nn.Module) -> dict[str, bool]:
    """The keyword arguments of a criterion's forward, each mapped to whether it is required: no
    default, or named in the criterion's `required_inputs` (inputs that its options make necessary)."""
    parameters = inspect.signature(criterion.forward).parameters
    required_by_options = set(getattr(criterion, "required_inputs", ()))
    return {
        name: parameter.default is inspect.Parameter.empty or name in required_by_options
        for name, parameter in parameters.items()
        if parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def build_loss_entries(
    losses: list[LossSpec | dict[str, Any]], *, defaults: Mapping[str, Any] | None = None
) -> list[LossEntry]:
    """One entry per loss spec (a `model.losses` mapping is read as `LossSpec.from_entry`)."""
    entries: list[LossEntry] = []
    taken: set[str] = set()
    for spec in (item if isinstance(item, LossSpec) else LossSpec.from_entry(item) for item in losses):
        component = LOSSES.get(spec.criterion)
        options = dict(spec.options)
        accepted = inspect.signature(component).parameters
        options.update({k: v for k, v in (defaults or {}).items() if k in accepted and k not in options})
        criterion = component(**options)
        name = spec.name or spec.criterion
        if name in taken:
            suffix = 2
            while f"{name}__{suffix}" in taken:
                suffix += 1
            name = f"{name}__{suffix}"
        taken.add(name)
        entries.append(
            LossEntry(
                name=name,
                criterion=criterion,
                weight=spec.weight,
                exclude=spec.exclude,
                inputs=dict(spec.inputs),
                arguments=forward_arguments(criterion),
            )
        )
    return entries


class LossModule(nn.Module):
    """Call with every available tensor (model outputs, batch fields, `epoch`) in one mapping."""

    def __init__(self, entries: list[LossEntry]) -> None:
        super().__init__()
        self.entries = entries
        self.criteria = nn.ModuleDict({entry.name: entry.criterion for entry in entries})

    def missing_inputs(self, available: set[str]) -> list[str]:
        """Messages for every required criterion input that `available` does not provide, and for every
        available input that a criterion's options make it refuse (its `refused_inputs`: input -> reason)."""
        problems = []
        for index, entry in enumerate(self.entries):
            for argument, reason in getattr(entry.criterion, "refused_inputs", {}).items():
                if entry.source(argument) in available:
                    problems.append(f"model.losses[{index}] ({entry.name}): {reason}")
            for argument, required in entry.arguments.items():
                source = entry.source(argument)
                if required and source not in available:
                    remapped = f" (remapped from '{argument}')" if source != argument else ""
                    hint = getattr(entry.criterion, "input_hints", {}).get(argument)
                    problems.append(
                        f"model.losses[{index}] ({entry.name}) needs '{source}'{remapped}, which neither the model "
                        f"outputs nor the batch provide (available: {', '.join(sorted(available))})"
                        + (f": {hint}" if hint else "")
                    )
            for argument in entry.inputs:
                if argument not in entry.arguments:
                    problems.append(
                        f"model.losses[{index}].inputs: '{argument}' is not an input of {entry.name} "
                        f"(inputs: {', '.join(entry.arguments)})"
                    )
        return problems

    def forward(self, context: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        for entry in self.entries:
            arguments = {
                argument: context[entry.source(argument)]
                for argument in entry.arguments
                if entry.source(argument) in context
            }
            for part, value in entry.criterion(**arguments).items():
                parts[f"{entry.name}/{part}"] = value.detach()
                if part in entry.exclude:
                    continue
                weighted = value * entry.part_weight(part)
                total = weighted if total is None else total + weighted
        if total is None:
            raise ValueError("every loss part is excluded: nothing to optimise")
        return total, parts


def build_loss_module(
    losses: list[LossSpec | dict[str, Any]], *, defaults: Mapping[str, Any] | None = None
) -> LossModule:
    return LossModule(build_loss_entries(losses, defaults=defaults))
