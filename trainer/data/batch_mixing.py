"""Batch-level mixup / cutmix for classification (torchvision.transforms.v2.MixUp / CutMix).

`build_batch_mixing(...)` returns None when both alphas are 0, else a callable
`mix(images, labels) -> (images, probs)` taking images (B, 3, H, W) and int64 labels (B,) and
returning (B, C) float label probabilities. With both alphas > 0 each batch uses one of the two,
50/50 (timm's switch). `prob` is the chance that a batch is mixed at all; an unmixed batch still
gets one-hot (B, C) labels, so the loss always sees probabilities. Use it on the device, after
the batch is moved there; uint8 images are mixed in float and rounded back to uint8, so the
device-side normalisation still applies after it; float images stay float.
"""

from __future__ import annotations

import torch
from torch.nn.functional import one_hot
from torchvision.transforms import v2

from trainer.data.errors import DataError


class BatchMixing:
    """Callable (images, labels) -> (images, label probabilities (B, C))."""

    def __init__(self, *, num_classes: int, mixup_alpha: float, cutmix_alpha: float, prob: float) -> None:
        self.num_classes = num_classes
        self.prob = prob
        choices = []
        if mixup_alpha > 0:
            choices.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            choices.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        self.choices = choices

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if labels.ndim != 1:
            raise DataError(f"batch mixing needs integer class labels (B,), got shape {tuple(labels.shape)}")
        if float(torch.rand(())) >= self.prob:
            return images, one_hot(labels, self.num_classes).to(torch.float32)
        choice = int(torch.randint(len(self.choices), ())) if len(self.choices) > 1 else 0
        is_uint8 = images.dtype == torch.uint8
        mixed, probs = self.choices[choice](images.float() if is_uint8 else images, labels)
        if is_uint8:
            mixed = mixed.round().clamp(0, 255).to(torch.uint8)
        return mixed, probs.to(torch.float32)


def build_batch_mixing(
    *, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0
) -> BatchMixing | None:
    """The batch mixer, or None when both alphas are 0 (nothing to do)."""
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise DataError(f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha} and {cutmix_alpha}")
    if not 0.0 <= prob <= 1.0:
        raise DataError(f"batch mixing prob must be within 0..1, got {prob}")
    if num_classes < 2:
        raise DataError(f"batch mixing needs at least 2 classes, got {num_classes}")
    if mixup_alpha == 0 and cutmix_alpha == 0:
        return None
    return BatchMixing(num_classes=num_classes, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=prob)
