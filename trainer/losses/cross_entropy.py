"""Cross-entropy for classification and segmentation, the semantics of ``F.cross_entropy``.

Class-index targets, mean reduction over non-ignored positions, weighted by ``class_weights``:

    ((1-eps) * sum_n w_yn * (-log p_yn) + (eps/C) * sum_n sum_c w_c * (-log p_c)) / sum_n w_yn

Probability targets (mixup/cutmix, ``(B, C)`` or ``(B, C, H, W)`` float) use
``t' = t * (1 - eps) + eps / C`` and divide by the number of samples (positions), as PyTorch does.

When every position is ignored (or every target has class weight 0) the loss is an exact zero
that keeps the graph (PyTorch: NaN), with no host sync. ``class_weights`` are per-class weights;
the recipe's ``weight`` key is the loss multiplier. How this relates to ``F.cross_entropy``:
docs/fidelity.md.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.constraints import NonNegative, Probability
from trainer.ops import upsample_logits
from trainer.registry import LOSSES


def resize_logits_to_labels(logits: Tensor, labels: Tensor) -> Tensor:
    """Upsample dense ``(B, C, h, w)`` logits bilinearly to the label size when the sizes differ."""
    if logits.ndim == 4:
        return upsample_logits(logits, tuple(labels.shape[-2:]))
    return logits


def cross_entropy_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    label_smoothing: float = 0.0,
    class_weights: Tensor | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """Mean cross-entropy of ``logits`` (B, C[, H, W]) against indices (B[, H, W]) or probabilities.

    Equal to ``F.cross_entropy(..., reduction="mean")`` except that an all-ignored input gives 0.
    Computed in float32 (logits from an fp16/bf16 autocast forward are upcast).
    """
    logits = resize_logits_to_labels(logits, labels).float()
    weight = None if class_weights is None else class_weights.to(device=logits.device, dtype=logits.dtype)
    if labels.is_floating_point():
        return F.cross_entropy(logits, labels.to(logits.dtype), weight=weight, label_smoothing=label_smoothing)
    per_position = F.cross_entropy(
        logits,
        labels,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    valid = labels != ignore_index
    if weight is None:
        denominator = valid.sum().to(per_position.dtype)
    else:
        denominator = (weight[torch.where(valid, labels, 0)] * valid).sum()
    # Zero denominator (all ignored): the numerator is 0 too, so divide by 1 -> exact 0, no NaN.
    denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return per_position.sum() / denominator


@LOSSES.register("cross_entropy", heads={"classification": ("fc",), "segmentation": ("seg_head",)}, parts=("ce",))
class CrossEntropyLoss(nn.Module):
    """Cross-entropy criterion; returns ``{"ce": loss}``.

    Options: ``label_smoothing`` in [0, 1], ``class_weights`` (one per class, or none),
    ``ignore_index`` (segmentation recipes use 255).
    """

    def __init__(
        self,
        *,
        label_smoothing: Annotated[float, Probability] = 0.0,
        class_weights: list[Annotated[float, NonNegative]] | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        if class_weights is not None and (len(class_weights) == 0 or any(float(w) < 0 for w in class_weights)):
            raise ValueError(f"class_weights must be a non-empty list of non-negative numbers, got {class_weights}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)
        weights = None if class_weights is None else torch.tensor([float(w) for w in class_weights])
        # Not persistent: the recipe holds the weights, checkpoints need not.
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, *, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        if self.class_weights is not None and self.class_weights.numel() != logits.shape[1]:
            raise ValueError(
                f"cross_entropy: class_weights has {self.class_weights.numel()} entries "
                f"but the logits have {logits.shape[1]} classes"
            )
        loss = cross_entropy_loss(
            logits,
            labels,
            label_smoothing=self.label_smoothing,
            class_weights=self.class_weights,
            ignore_index=self.ignore_index,
        )
        return {"ce": loss}

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, ignore_index={self.ignore_index}"
