"""Small tensor operations shared by data, models, losses, metrics and the engine (a base module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, H, W), bilinear (``align_corners=False``), in the logits' dtype;
    returned unchanged when already H x W."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def normalize_images(images: torch.Tensor, *, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 images (or float 0..1) (B, 3, H, W) -> float32 ``(x - mean) / std`` with x in 0..1;
    ``mean`` and ``std`` broadcast over (B, 3, H, W), e.g. shape (1, 3, 1, 1)."""
    scaled = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return (scaled - mean) / std
