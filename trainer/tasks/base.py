"""What every task provides to the engine: batching, evaluation, predictions and drawing."""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Evaluator(Protocol):
    def update(self, *, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Task(Protocol):
    name: str
    metric_names: tuple[str, ...]
    default_best_metric: str
    batch_fields: tuple[str, ...]  # batch keys a loss may read

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]: ...

    def build_evaluator(self, *, class_names: list[str], device: torch.device, postprocess: Any) -> Evaluator: ...
