"""Validate a merged recipe: structure, types and the constraints declared in the schema, then every
named component and its options against the registries' declarations.

All problems are collected and reported together, each with its file:line or override.
"""

from __future__ import annotations

import re
from typing import Any

from trainer.head_choice import HeadChoiceError, choose_head
from trainer.plugins import import_plugin, plugin_folders
from trainer.recipe.components import check_named_component, lookup
from trainer.recipe.errors import KeyPath, RecipeError, RecipeIssue
from trainer.recipe.locations import Locations
from trainer.recipe.loss_entries import check_loss_entry
from trainer.recipe.schema import TASKS, Recipe
from trainer.recipe.typecheck import check_dataclass
from trainer.registry import BACKBONES, DATASETS, FULL_MODELS, HEADS, LOSSES, NECKS, OPTIMIZERS, SCHEDULERS, TRANSFORMS


class IssueCollector:
    def __init__(self, locations: Locations) -> None:
        self.locations = locations
        self.issues: list[RecipeIssue] = []

    def __call__(self, path: KeyPath, message: str) -> None:
        self.issues.append(RecipeIssue(tuple(path), message, self.locations.find(tuple(path))))


def import_user_modules(modules: list[str], report: IssueCollector) -> None:
    """Import each module of `imports:` (see trainer/plugins.py for where they are searched)."""
    for index, module in enumerate(modules):
        folders = plugin_folders(report.locations.find(("imports", index)))
        problem = import_plugin(module, folders=folders)
        if problem is not None:
            report(("imports", index), problem)


def task_metric_names(task: str) -> tuple[str, ...]:
    """The metric names the task reports (read from its `Task` class)."""
    from trainer.tasks import task_class

    return tuple(task_class(task).metric_names)


def _mapping(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _list(parent: Any, key: str) -> list[Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, list) else []


def _check_data(recipe: dict[str, Any], task: Any, report: IssueCollector) -> None:
    data = _mapping(recipe, "data")
    dataset_name = data.get("format", "shapes")
    dataset = lookup(DATASETS, dataset_name, ("data", "format"), report)
    if dataset is None:
        return
    dataset_tasks = DATASETS.meta(dataset_name).get("tasks", TASKS)
    if task in TASKS and task not in dataset_tasks:
        report(("data", "format"), f"dataset '{dataset_name}' holds {' or '.join(dataset_tasks)} data, not {task}")
    for split in ("train", "val"):
        check_named_component(registry=DATASETS, entry={"format": dataset_name, **_mapping(data, split)},
                              path=("data", split), report=report)


def _check_model(recipe: dict[str, Any], task: Any, report: IssueCollector) -> None:
    model = _mapping(recipe, "model")
    losses = _list(model, "losses")
    if not losses:
        report(("model", "losses"), "at least one loss is needed, e.g. [{criterion: cross_entropy}]")
    for index, entry in enumerate(losses):
        check_loss_entry(entry, path=("model", "losses", index), task=task, report=report)
    architecture = _mapping(model, "architecture")
    for part, registry in {"backbone": BACKBONES, "neck": NECKS, "head": HEADS, "full": FULL_MODELS}.items():
        if architecture.get(part) is not None:
            check_named_component(registry=registry, entry=architecture[part],
                                  path=("model", "architecture", part), report=report)
    criteria = [entry.get("criterion") for entry in losses if isinstance(entry, dict)]
    if criteria and all(isinstance(name, str) and name in LOSSES for name in criteria) and task in TASKS:
        try:
            choose_head(task=task, criteria=criteria, architecture=architecture)
        except HeadChoiceError as error:
            report(("model", "architecture", error.part), str(error))


def _check_components(recipe: dict[str, Any], report: IssueCollector) -> None:
    """Names and options of every component; tolerant of sections already reported as malformed."""
    task = recipe.get("task", "classification")
    _check_data(recipe, task, report)
    for split in ("train", "val"):
        for index, entry in enumerate(_list(_mapping(recipe, "augmentation"), split)):
            check_named_component(registry=TRANSFORMS, entry=entry, path=("augmentation", split, index), report=report)
    _check_model(recipe, task, report)
    training = _mapping(recipe, "training")
    for key, registry in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)):
        if key in training:
            check_named_component(registry=registry, entry=training[key], path=("training", key), report=report)
    best = training.get("best_metric")
    if isinstance(best, str) and task in TASKS and best not in task_metric_names(task):
        names = task_metric_names(task)
        report(("training", "best_metric"), f"'{best}' is not a {task} metric ({', '.join(names)})")


def validate_raw_recipe(recipe: dict[str, Any], locations: Locations) -> None:
    """Raise one RecipeError listing every problem found; return quietly when the recipe is valid."""
    report = IssueCollector(locations)
    check_dataclass(recipe, Recipe, (), report)
    imports = recipe.get("imports", [])
    if isinstance(imports, list) and all(isinstance(module, str) for module in imports):
        import_user_modules(imports, report)
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
