"""Per-task wiring: batch fields, collate, evaluation, predictions."""

from __future__ import annotations

import importlib

_TASK_CLASSES = {
    "classification": ("trainer.tasks.classification", "ClassificationTask"),
    "detection": ("trainer.tasks.detection", "DetectionTask"),
    "segmentation": ("trainer.tasks.segmentation", "SegmentationTask"),
}


def get_task(name: str):
    module_name, class_name = _TASK_CLASSES[name]
    return getattr(importlib.import_module(module_name), class_name)()
