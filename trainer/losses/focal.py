"""Sigmoid focal loss for classification and segmentation (``torchvision.ops.sigmoid_focal_loss``).

Per element (one sigmoid per class): ``ce = BCE(x, t)``, ``p_t = p t + (1-p)(1-t)``,
``loss = ce (1-p_t)^gamma``, times ``alpha t + (1-alpha)(1-t)`` when ``alpha >= 0``.
Targets are one-hot class indices, or probabilities from mixup/cutmix.

Reduction (a deliberate choice): **sum over classes, mean over samples** (over non-ignored
pixels for segmentation).  NetsPresso takes the mean over all B*C elements, which divides the
loss by the number of classes: with 1000 classes its value and gradients are 1000x smaller and
the scale depends on C.  Summing over classes keeps one sample's loss independent of C (as
RetinaNet sums over classes and anchors before normalising), so learning rates carry over.
``mean over elements = this value / C``.

Ignored positions (``labels == ignore_index``) contribute nothing; when every position is
ignored the loss is an exact zero that keeps the graph (no NaN, no host sync).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from trainer.losses.cross_entropy import resize_logits_to_labels
from trainer.registry import LOSSES


def focal_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    ignore_index: int = -100,
) -> Tensor:
    """Focal loss of ``logits`` (B, C[, H, W]) against indices (B[, H, W]) or probabilities.

    Summed over the class dimension, averaged over the (non-ignored) samples or pixels.
    Computed in float32.
    """
    logits = resize_logits_to_labels(logits, labels).float()
    num_classes = logits.shape[1]
    if labels.is_floating_point():
        targets = labels.to(logits.dtype)
        valid = None
    else:
        # One-hot by comparison: no host sync, and ignored labels give an all-zero row (masked below).
        classes = torch.arange(num_classes, device=logits.device).view(1, num_classes, *([1] * (logits.ndim - 2)))
        targets = (labels.unsqueeze(1) == classes).to(logits.dtype)
        valid = labels != ignore_index
    per_sample = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none").sum(dim=1)
    if valid is None:
        return per_sample.mean()
    count = valid.sum().to(per_sample.dtype)
    count = torch.where(count > 0, count, torch.ones_like(count))
    return torch.where(valid, per_sample, torch.zeros_like(per_sample)).sum() / count


@LOSSES.register("focal_loss", heads={"classification": ("fc",), "segmentation": ("seg_head",)})
class FocalLoss(nn.Module):
    """Sigmoid focal loss criterion; returns ``{"focal": loss}``.

    Options: ``alpha`` (class balance, negative disables it), ``gamma`` >= 0, ``ignore_index``.
    """

    def __init__(self, *, alpha: float = 0.25, gamma: float = 2.0, ignore_index: int = -100) -> None:
        super().__init__()
        if float(alpha) > 1.0:
            raise ValueError(f"alpha must be <= 1 (negative disables it), got {alpha}")
        if float(gamma) < 0.0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)

    def forward(self, *, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        loss = focal_loss(logits, labels, alpha=self.alpha, gamma=self.gamma, ignore_index=self.ignore_index)
        return {"focal": loss}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, ignore_index={self.ignore_index}"
