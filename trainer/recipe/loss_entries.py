"""Check one `model.losses` entry: the criterion and its options, and the entry's own keys (`weight`,
`exclude`, `name`, `inputs`), per-part weights and exclusions against the parts the loss declares."""

from __future__ import annotations

from typing import Annotated, Any

from trainer.constants import IGNORE_INDEX
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


def _check_segmentation_ignore(entry: dict[str, Any], path: KeyPath, report: Report) -> None:
    """Segmentation masks mark ignored pixels IGNORE_INDEX; a loss told otherwise would train on them."""
    value = entry.get("ignore_index")
    if "ignore_index" in entry and value != IGNORE_INDEX:
        report(path + ("ignore_index",), f"segmentation masks mark ignored pixels with {IGNORE_INDEX}; "
               f"set ignore_index: {IGNORE_INDEX} or leave it out (it defaults to {IGNORE_INDEX} for "
               f"segmentation), got {value!r}")


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
    if task == "segmentation":
        _check_segmentation_ignore(entry, path, report)
