"""The tasks, by name: one `Task` subclass per file, listed here (imported when first asked for)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.tasks.base import Task

_TASK_CLASSES = {
    "classification": ("trainer.tasks.classification", "ClassificationTask"),
    "detection": ("trainer.tasks.detection", "DetectionTask"),
    "segmentation": ("trainer.tasks.segmentation", "SegmentationTask"),
}


def task_names() -> tuple[str, ...]:
    return tuple(_TASK_CLASSES)


def task_class(name: str) -> type[Task]:
    """The `Task` subclass of `name` (a KeyError for an unknown task; the recipe schema checks names)."""
    module_name, class_name = _TASK_CLASSES[name]
    return getattr(importlib.import_module(module_name), class_name)


def get_task(name: str) -> Task:
    return task_class(name)()
