"""`fpn`: torchvision's FeaturePyramidNetwork, optionally with RetinaNet's P6/P7 levels.

``extra_levels`` adds torchvision's ``LastLevelP6P7`` (strides 8..32 become 8..128): ``"p6p7"`` feeds it
P5, the last FPN output, as ``retinanet_resnet50_fpn`` does (``LastLevelP6P7(256, 256)``);
``"p6p7_c5"`` feeds it C5, the last input map, as ``retinanet_resnet50_fpn_v2`` and the paper do.
``out_channels`` defaults to half the channels of the finest input level: 256 on ResNet-50 (C3 has
512, torchvision's FPN width), 64 on ResNet-18 (C3 has 128). A 256-channel FPN and head on ResNet-18
trained from scratch at AdamW 1e-3 reached val mAP50 0.52 after 3 of 5 epochs on shapes where the
64-channel one reached 0.83, at 2.2x the speed (docs/benchmarks.md "Defaults that train").
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from trainer.constraints import AtLeastOne
from trainer.registry import NECKS


def default_out_channels(in_channels: list[int]) -> int:
    """Half the channels of the finest input level, at least 16 (256 on ResNet-50, 64 on ResNet-18)."""
    return max(16, int(in_channels[0]) // 2)


@NECKS.register("fpn")
class FPN(nn.Module):
    def __init__(
        self,
        *,
        in_channels: list[int],
        in_strides: list[int],
        out_channels: Annotated[int, AtLeastOne] | None = None,
        extra_levels: str = "none",
    ) -> None:
        super().__init__()
        out_channels = out_channels or default_out_channels(in_channels)
        if extra_levels not in ("none", "p6p7", "p6p7_c5"):
            raise ValueError(f"extra_levels must be 'none', 'p6p7' or 'p6p7_c5', got '{extra_levels}'")
        if len(in_channels) != len(in_strides) or not in_channels:
            raise ValueError("fpn needs one stride per input channel count")
        extra = None
        if extra_levels == "p6p7":
            extra = LastLevelP6P7(out_channels, out_channels)
        elif extra_levels == "p6p7_c5":
            extra = LastLevelP6P7(int(in_channels[-1]), out_channels)
        self.fpn = FeaturePyramidNetwork([int(c) for c in in_channels], out_channels, extra_blocks=extra)
        strides = [int(s) for s in in_strides]
        if extra is not None:
            strides += [strides[-1] * 2, strides[-1] * 4]
        self.out_strides = strides
        self.out_channels = [out_channels] * len(strides)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))
        return list(outputs.values())
