"""Validate a merged recipe: structure and types, then every named component and its options.

All problems are collected and reported together, each with its file:line or override.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from trainer.models.head_choice import HeadChoiceError, choose_head
from trainer.recipe.components import check_named_component, lookup
from trainer.recipe.errors import KeyPath, RecipeError, RecipeIssue
from trainer.recipe.load import Locations
from trainer.recipe.schema import AMP_MODES, TASKS, Recipe
from trainer.recipe.typecheck import check_dataclass, check_value
from trainer.registry import (
    BACKBONES,
    DATASETS,
    FULL_MODELS,
    HEADS,
    LOSSES,
    NECKS,
    OPTIMIZERS,
    SCHEDULERS,
    TRANSFORMS,
    closest_name,
)

LOSS_ENTRY_KEYS = ("criterion", "name", "weight", "exclude", "inputs")
TASK_METRICS = {
    "classification": ("top1", "top5"),
    "detection": ("mAP50_95", "mAP50", "mAP75"),
    "segmentation": ("mIoU", "pixel_acc"),
}


# numbers that must be at least this much, and strings that must be one of these (also in the JSON Schema)
MINIMUMS: dict[KeyPath, int] = {
    ("training", "epochs"): 1,
    ("training", "batch_size"): 1,
    ("training", "grad_accum_steps"): 1,
    ("training", "val_every"): 1,
    ("training", "max_steps_per_epoch"): 1,
    ("training", "early_stopping", "patience"): 0,
    ("training", "ema", "warmup_steps"): 0,
    ("logging", "log_every"): 1,
    ("logging", "val_images_every"): 0,
    ("environment", "num_workers"): 0,
    ("augmentation", "mosaic", "off_last_epochs"): 0,
}
CHOICES: dict[KeyPath, tuple[str, ...]] = {
    ("task",): TASKS,
    ("training", "amp"): AMP_MODES,
    ("logging", "progress"): ("auto", "bar", "lines", "none"),
}
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?|mps"


class IssueCollector:
    def __init__(self, locations: Locations) -> None:
        self.locations = locations
        self.issues: list[RecipeIssue] = []

    def __call__(self, path: KeyPath, message: str) -> None:
        self.issues.append(RecipeIssue(tuple(path), message, self.locations.find(tuple(path))))


def import_user_modules(modules: list[str], report: IssueCollector) -> None:
    for index, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as error:
            report(("imports", index), f"cannot import '{module}': {error}")


def _check_ranges(recipe: dict[str, Any], report: IssueCollector) -> None:
    def get(path: KeyPath) -> Any:
        node: Any = recipe
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    for path, minimum in MINIMUMS.items():
        value = get(path)
        if isinstance(value, int) and not isinstance(value, bool) and value < minimum:
            report(path, f"must be at least {minimum}, got {value}")
    for path, valid in CHOICES.items():
        value = get(path)
        if isinstance(value, str) and value not in valid:
            suggestion = closest_name(value, valid)
            hint = f"; did you mean '{suggestion}'?" if suggestion else ""
            report(path, f"must be one of {', '.join(valid)}, got '{value}'{hint}")
    decay = get(("training", "ema", "decay"))
    if isinstance(decay, (int, float)) and not 0.0 < decay < 1.0:
        report(("training", "ema", "decay"), f"must be between 0 and 1, got {decay}")
    clip = get(("training", "grad_clip"))
    if isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip <= 0:
        report(("training", "grad_clip"), f"must be positive, got {clip}")
    device = get(("environment", "device"))
    if isinstance(device, str) and not re.fullmatch(DEVICE_PATTERN, device):
        report(("environment", "device"), f"must be auto, cpu, cuda or cuda:N, got '{device}'")


def _check_loss_entry(entry: dict[str, Any], path: KeyPath, report: IssueCollector) -> None:
    check_named_component(
        registry=LOSSES, entry=entry, path=path, report=report, name_key="criterion", reserved=LOSS_ENTRY_KEYS
    )
    weight = entry.get("weight")
    if weight is not None:
        check_value(weight, float | dict[str, float], path + ("weight",), report)
    if "exclude" in entry:
        check_value(entry["exclude"], list[str], path + ("exclude",), report)
    if "inputs" in entry:
        check_value(entry["inputs"], dict[str, str], path + ("inputs",), report)
    if "name" in entry:
        check_value(entry["name"], str, path + ("name",), report)


SEGMENTATION_IGNORE_INDEX = 255  # what masks, crop padding and metrics use (trainer/tasks/segmentation.py)


def _check_segmentation_ignore(entry: dict[str, Any], path: KeyPath, report: IssueCollector) -> None:
    """Segmentation masks mark ignored pixels 255; a loss told otherwise (e.g. cross_entropy's
    classification default -100 written out) would train on them or fail on the first batch.
    Left out, ignore_index is filled with 255 by the task (trainer/losses/module.py `defaults`)."""
    value = entry.get("ignore_index")
    if "ignore_index" in entry and value != SEGMENTATION_IGNORE_INDEX:
        report(path + ("ignore_index",), f"segmentation masks mark ignored pixels with {SEGMENTATION_IGNORE_INDEX}; "
               f"set ignore_index: {SEGMENTATION_IGNORE_INDEX} or leave it out (it defaults to "
               f"{SEGMENTATION_IGNORE_INDEX} for segmentation), got {value!r}")


def _mapping(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _list(parent: Any, key: str) -> list[Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, list) else []


def _check_components(recipe: dict[str, Any], report: IssueCollector) -> None:
    """Names and options of every component; tolerant of sections already reported as malformed."""
    task = recipe.get("task", "classification")
    data = _mapping(recipe, "data")
    dataset_name = data.get("format", "shapes")
    dataset = lookup(DATASETS, dataset_name, ("data", "format"), report)
    dataset_tasks = DATASETS.meta(dataset_name).get("tasks", TASKS) if dataset is not None else TASKS
    if task in TASKS and task not in dataset_tasks:
        report(("data", "format"), f"dataset '{dataset_name}' holds {' or '.join(dataset_tasks)} data, not {task}")
    if dataset is not None:
        for split in ("train", "val"):
            check_named_component(
                registry=DATASETS,
                entry={"name": dataset_name, **_mapping(data, split)},
                path=("data", split),
                report=report,
                injected=("task", "split"),
            )
    for split in ("train", "val"):
        for index, entry in enumerate(_list(_mapping(recipe, "augmentation"), split)):
            check_named_component(registry=TRANSFORMS, entry=entry, path=("augmentation", split, index), report=report)

    model = _mapping(recipe, "model")
    losses = _list(model, "losses")
    if not losses:
        report(("model", "losses"), "at least one loss is needed, e.g. [{criterion: cross_entropy}]")
    for index, entry in enumerate(losses):
        if isinstance(entry, dict):
            _check_loss_entry(entry, ("model", "losses", index), report)
            if task == "segmentation":
                _check_segmentation_ignore(entry, ("model", "losses", index), report)

    architecture = _mapping(model, "architecture")
    kinds = {"backbone": BACKBONES, "neck": NECKS, "head": HEADS, "full": FULL_MODELS}
    injected = {
        "backbone": (),
        "neck": ("in_channels", "in_strides"),
        "head": ("in_channels", "in_strides", "num_classes"),
        "full": ("num_classes",),
    }
    for part, registry in kinds.items():
        if architecture.get(part) is not None:
            check_named_component(
                registry=registry,
                entry=architecture[part],
                path=("model", "architecture", part),
                report=report,
                injected=injected[part],
            )
    criteria = [entry.get("criterion") for entry in losses if isinstance(entry, dict)]
    if criteria and all(isinstance(name, str) and name in LOSSES for name in criteria) and task in TASKS:
        try:
            choose_head(task=task, criteria=criteria, architecture=architecture)
        except HeadChoiceError as error:
            report(("model", "architecture", error.part), str(error))

    training = _mapping(recipe, "training")
    if "optimizer" in training:
        check_named_component(
            registry=OPTIMIZERS, entry=training["optimizer"], path=("training", "optimizer"), report=report,
            injected=("params",),
        )
    if "scheduler" in training:
        check_named_component(
            registry=SCHEDULERS, entry=training["scheduler"], path=("training", "scheduler"), report=report,
            injected=("optimizer", "steps_per_epoch", "epochs"),
        )
    best = training.get("best_metric")
    if isinstance(best, str) and task in TASK_METRICS and best not in TASK_METRICS[task]:
        report(("training", "best_metric"), f"'{best}' is not a {task} metric ({', '.join(TASK_METRICS[task])})")


def validate_raw_recipe(recipe: dict[str, Any], locations: Locations) -> None:
    """Raise one RecipeError listing every problem found; return quietly when the recipe is valid."""
    report = IssueCollector(locations)
    check_dataclass(recipe, Recipe, (), report)
    imports = recipe.get("imports", [])
    if isinstance(imports, list) and all(isinstance(module, str) for module in imports):
        import_user_modules(imports, report)
    _check_ranges(recipe, report)
    _check_components(recipe, report)
    if report.issues:
        raise RecipeError(sort_issues(report.issues))


def sort_issues(issues: list[RecipeIssue]) -> list[RecipeIssue]:
    """In reading order: by file (first mention), line and column; command-line overrides after."""
    files: list[str] = []

    def key(issue: RecipeIssue) -> tuple:
        match = re.fullmatch(r"(.*):(\d+):(\d+)", issue.where or "")
        if match is None:
            return (1, 0, 0, 0)
        if match.group(1) not in files:
            files.append(match.group(1))
        return (0, files.index(match.group(1)), int(match.group(2)), int(match.group(3)))

    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=key)
