"""PIDNet's boundary target as a data step, as the official pipeline makes it.

``BoundaryTargetStep`` adds ``boundary_labels``, a ``tv_tensors.Mask`` of {0, 1}, to a segmentation
sample: the edge band of the sample's whole label map (before any augmentation when the step comes
first in ``augmentation.train``), edges closer than ``border`` px to the image border dropped,
dilated with a ``dilation`` x ``dilation`` window (``trainer.losses.boundary_target``). Being a
``Mask``, it is rescaled (nearest), cropped and flipped together with the image and the label;
where a transform pads it, it gets the mask fill (``IGNORE_INDEX``), which ``boundary_labels_batch``
reads as 0, as the official pipeline pads its edge map with 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchvision import tv_tensors

from trainer.constants import IGNORE_INDEX
from trainer.losses.boundary_target import boundary_target

BOUNDARY_KEY = "boundary_labels"


class BoundaryTargetStep:
    """Sample -> the same sample plus ``boundary_labels`` made from its ``mask``."""

    def __init__(self, *, border: int = 6, dilation: int = 4, ignore_index: int = IGNORE_INDEX) -> None:
        if border < 0:
            raise ValueError(f"border must be >= 0, got {border}")
        if dilation < 0:
            raise ValueError(f"dilation must be >= 0, got {dilation}")
        self.border = int(border)
        self.dilation = int(dilation)
        self.ignore_index = int(ignore_index)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(sample, Mapping) or "mask" not in sample:
            raise ValueError("boundary_target needs segmentation samples (a 'mask' entry)")
        mask = torch.as_tensor(sample["mask"]).as_subclass(torch.Tensor)
        labels = mask.reshape(1, *mask.shape[-2:])
        edge = boundary_target(labels, ignore_index=self.ignore_index, dilation=self.dilation, border=self.border)
        return {**sample, BOUNDARY_KEY: tv_tensors.Mask(edge[0].to(torch.uint8))}

    def __repr__(self) -> str:
        return f"BoundaryTargetStep(border={self.border}, dilation={self.dilation})"


def boundary_labels_batch(samples: Sequence[Mapping[str, Any]]) -> torch.Tensor | None:
    """(B, H, W) uint8 {0, 1} from the samples' ``boundary_labels`` (padding 255 -> 0), or None
    when the samples carry none."""
    if not samples or BOUNDARY_KEY not in samples[0]:
        return None
    edges = [torch.as_tensor(sample[BOUNDARY_KEY]).as_subclass(torch.Tensor) for sample in samples]
    return torch.stack([(edge.reshape(edge.shape[-2:]) == 1).to(torch.uint8) for edge in edges])
