"""Check one `model.losses` entry: the criterion and its options, and the entry's own keys (`weight`,
`exclude`, `name`, `inputs`), per-part weights and exclusions against the parts the loss declares."""

from __future__ import annotations

from typing import Annotated, Any

from trainer.constraints import NonNegative
from trainer.recipe.components import check_named_component
from trainer.recipe.errors import KeyPath
from trainer.recipe.typecheck import Report, check_value
from trainer.registry import LOSSES
from trainer.specs import LOSS_ENTRY_KEYS

Weight = Annotated[float, NonNegative]
ENTRY_TYPES: dict[str, Any] = {
    "weight": Weight | dict[str, Weight] | None,
    "exclude": list[str],
    "inputs": dict[str, str],
    "name": str,
}


def _check_parts(entry: dict[str, Any], path: KeyPath, report: Report) -> None:
    """`weight: {part: w}` and `exclude: [part]` name parts the criterion declares (`parts=` at registration)."""
    parts = LOSSES.meta(entry["criterion"]).get("parts")
    if not parts:
        return
    named: list[tuple[KeyPath, Any]] = []
    if isinstance(entry.get("weight"), dict):
        named += [(path + ("weight", part), part) for part in entry["weight"]]
    if isinstance(entry.get("exclude"), list):
        named += [(path + ("exclude", index), part) for index, part in enumerate(entry["exclude"])]
    for where, part in named:
        if part not in parts:
            report(where, f"'{part}' is not a part of {entry['criterion']} (parts: {', '.join(parts)})")


def _check_task_loss_defaults(entry: dict[str, Any], path: KeyPath, task: Any, report: Report) -> None:
    """Options the task fixes for every loss (`Task.loss_defaults`, e.g. segmentation's ignore index): an
    entry may leave them out or repeat them, never set another value (the data would disagree with the loss)."""
    from trainer.recipe.schema import TASKS
    from trainer.tasks import task_class

    if task not in TASKS:
        return  # reported with `task`
    for option, fixed in task_class(task).loss_defaults.items():
        if option in entry and entry[option] != fixed:
            report(path + (option,), f"{task} data fixes {option} to {fixed!r}; set {option}: {fixed!r} or "
                   f"leave it out (it defaults to {fixed!r} for {task}), got {entry[option]!r}")


def check_loss_entry(entry: Any, *, path: KeyPath, task: Any, report: Report) -> None:
    if not isinstance(entry, dict):
        report(path, f"expected a mapping with 'criterion', got {entry!r}")
        return
    component = check_named_component(registry=LOSSES, entry=entry, path=path, report=report, reserved=LOSS_ENTRY_KEYS)
    for key, annotation in ENTRY_TYPES.items():
        if key in entry:
            check_value(entry[key], annotation, path + (key,), report)
    if component is not None:
        _check_parts(entry, path, report)
    _check_task_loss_defaults(entry, path, task, report)
