"""The head follows from the losses: each criterion registers the heads (or whole models) it can
train per task; the first is the default when the recipe names none."""

from __future__ import annotations

from typing import Any

from trainer.registry import FULL_MODELS, LOSSES


class HeadChoiceError(ValueError):
    def __init__(self, message: str, *, part: str) -> None:
        self.part = part  # "head" or "full": which key of model.architecture is at fault
        super().__init__(message)


def compatible_heads(*, task: str, criteria: list[str]) -> list[str]:
    """Heads or full models every listed criterion can train, in the first criterion's order."""
    per_loss = []
    for criterion in criteria:
        heads = LOSSES.meta(criterion).get("heads", {})
        per_loss.append(list(heads.get(task, ())))
    common = [head for head in per_loss[0] if all(head in heads for heads in per_loss[1:])]
    return common


def choose_head(*, task: str, criteria: list[str], architecture: dict[str, Any]) -> tuple[str, str]:
    """Returns ("head", name) or ("full", name); raises HeadChoiceError for an incompatible pair."""
    compatible = compatible_heads(task=task, criteria=criteria)
    listing = ", ".join(compatible) if compatible else "none"
    full = (architecture.get("full") or {}).get("name")
    head = (architecture.get("head") or {}).get("name")
    if full is not None:
        if full not in compatible:
            raise HeadChoiceError(
                f"model '{full}' cannot be trained by {', '.join(criteria)} for {task} (compatible: {listing})",
                part="full",
            )
        return "full", full
    if head is not None:
        if head not in compatible:
            raise HeadChoiceError(
                f"head '{head}' cannot be trained by {', '.join(criteria)} for {task} (compatible: {listing})",
                part="head",
            )
        return "head", head
    if not compatible:
        raise HeadChoiceError(f"no head is trained by all of {', '.join(criteria)} for {task}", part="head")
    default = compatible[0]
    return ("full", default) if default in FULL_MODELS else ("head", default)
