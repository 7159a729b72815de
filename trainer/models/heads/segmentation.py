"""A light FPN-style segmentation head for backbone (or neck) feature pyramids.

Each level is projected to ``hidden_channels`` by a 1x1 conv, upsampled (bilinear) to the finest
level and summed; then 3x3 conv + BN + ReLU, dropout, and a 1x1 classifier. The logits are
upsampled bilinearly (``align_corners=False``) to ``image_size``.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from trainer.constraints import AtLeastOne, Range
from trainer.registry import HEADS


@HEADS.register("seg_head", tasks=("segmentation",))
class SegmentationHead(nn.Module):
    def __init__(
        self,
        *,
        in_channels: list[int],
        in_strides: list[int],
        num_classes: int,
        hidden_channels: Annotated[int, AtLeastOne] = 64,
        dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1,
    ) -> None:
        super().__init__()
        if not in_channels or len(in_channels) != len(in_strides):
            raise ValueError(
                f"seg_head needs one stride per input level, got in_channels={in_channels}, in_strides={in_strides}"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.in_strides = list(in_strides)
        self.finest = min(range(len(in_strides)), key=lambda i: in_strides[i])
        self.lateral = nn.ModuleList(nn.Conv2d(c, hidden_channels, 1) for c in in_channels)
        self.fuse = nn.Sequential(
            nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden_channels),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(hidden_channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor], *, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        if len(features) != len(self.lateral):
            raise ValueError(f"seg_head built for {len(self.lateral)} feature levels, got {len(features)}")
        size = features[self.finest].shape[-2:]
        fused = self.lateral[self.finest](features[self.finest])
        for i, (lateral, feature) in enumerate(zip(self.lateral, features)):
            if i != self.finest:
                fused = fused + F.interpolate(lateral(feature), size=size, mode="bilinear", align_corners=False)
        logits = self.classifier(self.dropout(self.fuse(fused)))
        logits = F.interpolate(logits, size=tuple(image_size), mode="bilinear", align_corners=False)
        return {"logits": logits}
