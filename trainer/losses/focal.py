"""Sigmoid focal loss for classification and segmentation (``torchvision.ops.sigmoid_focal_loss``).

One sigmoid per class against one-hot targets (class indices) or probabilities (mixup / cutmix);
dense logits are upsampled bilinearly to the label size. ``reduction``: ``mean`` (torchvision's
and NetsPresso's: over samples x classes), ``sum``, or ``sample_sum`` (summed over classes,
averaged over samples: ``C`` times ``mean``). Positions labelled ``ignore_index`` count in no
reduction; when every position is ignored the loss is a zero that keeps the graph.
How this relates to the references: docs/fidelity.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from trainer.constraints import NonNegative, Range
from trainer.losses.cross_entropy import resize_logits_to_labels
from trainer.registry import LOSSES

Reduction = Literal["mean", "sum", "sample_sum"]
REDUCTIONS = ("mean", "sum", "sample_sum")


def focal_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    """Focal loss of ``logits`` (B, C[, H, W]) against indices (B[, H, W]) or probabilities (B, C[, H, W]).

    ``mean`` and ``sum`` equal ``sigmoid_focal_loss(logits, one_hot(labels), reduction=...)`` over the
    non-ignored positions; ``sample_sum`` is ``sum`` divided by the number of non-ignored positions.
    Computed in float32.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    logits = resize_logits_to_labels(logits, labels).float()
    num_classes = logits.shape[1]
    if labels.is_floating_point():
        targets = labels.to(logits.dtype)
        if reduction != "sample_sum":
            return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
        per_position = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none").sum(dim=1)
        return per_position.mean()
    # One-hot by comparison: no host sync, and ignored labels give an all-zero row (masked below).
    classes = torch.arange(num_classes, device=logits.device).view(1, num_classes, *([1] * (logits.ndim - 2)))
    targets = (labels.unsqueeze(1) == classes).to(logits.dtype)
    valid = labels != ignore_index
    per_position = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none").sum(dim=1)
    total = torch.where(valid, per_position, torch.zeros_like(per_position)).sum()
    if reduction == "sum":
        return total
    count = valid.sum().to(total.dtype)
    if reduction == "mean":
        count = count * num_classes
    return total / torch.where(count > 0, count, torch.ones_like(count))


@LOSSES.register("focal_loss", heads={"classification": ("fc",), "segmentation": ("seg_head",)}, parts=("focal",))
class FocalLoss(nn.Module):
    """Sigmoid focal loss criterion; returns ``{"focal": loss}``.

    Options: ``alpha`` (class balance, negative disables it), ``gamma`` >= 0, ``ignore_index``,
    ``reduction`` (``mean`` | ``sum`` | ``sample_sum``).
    """

    def __init__(
        self,
        *,
        alpha: Annotated[float, Range(le=1)] = 0.25,  # negative disables it
        gamma: Annotated[float, NonNegative] = 2.0,
        ignore_index: int = -100,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if float(alpha) > 1.0:
            raise ValueError(f"alpha must be <= 1 (negative disables it), got {alpha}")
        if float(gamma) < 0.0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        self.reduction = reduction

    def forward(self, *, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        loss = focal_loss(
            logits, labels, alpha=self.alpha, gamma=self.gamma, ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
        return {"focal": loss}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, ignore_index={self.ignore_index}, reduction={self.reduction}"
