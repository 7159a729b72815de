"""The `Task` seam: everything that differs between classification, detection and segmentation.

The engine and the commands hold a `Task` and never look at the task's name: batching (`collate`,
batch-level mixing, the training data set's wrapper), losses (`batch_fields`, `loss_defaults`),
evaluation (`build_evaluator`, `metric_names`, `default_best_metric`, `report`), the validation
panels of a run (`draw_panels`) and `trainer predict`'s output (`prediction_writer`). A new task is
one file with a `Task` subclass, listed in `trainer/tasks/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from rich.table import Table

from trainer.specs import AutoOptimizerDefaults
from trainer.tasks.drawing import Panels
from trainer.tasks.predictions import PredictionWriter

if TYPE_CHECKING:
    from trainer.recipe.schema import Recipe


class Evaluator(Protocol):
    class_names: list[str]

    def update(self, *, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Task(ABC):
    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]
    default_best_metric: ClassVar[str]
    batch_fields: ClassVar[tuple[str, ...]]  # batch keys a loss may read
    # filled into the loss entries that accept these options and leave them out (losses/module.py)
    loss_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    panel_images: ClassVar[int] = 8  # validation images drawn per epoch
    # predict follows the image's corners through the val transforms to map outputs back
    maps_back_to_image: ClassVar[bool] = True
    has_boxes: ClassVar[bool] = False  # samples carry boxes: transforms end by clamping and sanitising them
    auto_optimizer: ClassVar[AutoOptimizerDefaults]  # what `optimizer: {name: auto}` picks for this task
    default_warmup_epochs: ClassVar[float] = 0.0  # the scheduler's warmup when the recipe sets none

    @abstractmethod
    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Samples (after the transforms) -> a batch of tensors."""

    @abstractmethod
    def build_evaluator(self, *, class_names: list[str], device: torch.device, postprocess: Any) -> Evaluator:
        """A fresh evaluator; `postprocess` is the recipe's `model.postprocess`."""

    @abstractmethod
    def draw_panels(
        self, *, batch: dict[str, Any], outputs: dict[str, torch.Tensor], class_names: list[str], postprocess: Any
    ) -> Panels:
        """The validation images of `batch` with the model's eval `outputs` (float32) drawn on them."""

    @abstractmethod
    def prediction_writer(
        self, *, out_dir: Path, class_names: list[str], postprocess: Any, top_k: int, draw_threshold: float
    ) -> PredictionWriter:
        """What `trainer predict` writes for this task."""

    def report(self, evaluator: Any) -> Table | None:
        """An extra table that `trainer eval` prints under the metrics (per-class AP or IoU), if any."""
        return None

    def build_batch_mixing(self, *, recipe: Recipe, num_classes: int) -> Callable | None:
        """Batch-level mixing applied on the device after `prepare_batch` (classification: mixup/cutmix)."""
        return None

    def wrap_train_dataset(self, dataset: Any, *, recipe: Recipe) -> tuple[Any, Callable[[int], None] | None]:
        """The training data set, possibly wrapped (detection: mosaic), and a per-epoch callback."""
        return dataset, None
