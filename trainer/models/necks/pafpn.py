"""`pafpn`: YOLOX PAFPN (top-down FPN then bottom-up PAN, CSP blocks), for three levels.

Same layout and module names as YOLOX ``yolo_pafpn.py``; the widths come from ``in_channels``
(YOLOX's ``int(c * width)``), so any three-level backbone fits. Outputs have the input channels
and strides. Upsampling is nearest to the lateral map's size (equal to YOLOX's 2x for sizes that
are multiples of 32; also right for other sizes).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from trainer.constraints import Positive
from trainer.models.backbones.cspdarknet import BaseConv, CSPLayer, conv_block
from trainer.registry import NECKS


@NECKS.register("pafpn")
class PAFPN(nn.Module):
    def __init__(
        self,
        *,
        in_channels: list[int],
        in_strides: list[int],
        depth: Annotated[float, Positive] = 0.33,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        if len(in_channels) != 3 or len(in_strides) != 3:
            raise ValueError(f"pafpn needs exactly 3 input levels, got channels {list(in_channels)}")
        if [int(s) for s in in_strides[1:]] != [2 * int(s) for s in in_strides[:2]]:
            raise ValueError(f"pafpn needs strides that double level to level, got {list(in_strides)}")
        c3, c4, c5 = (int(c) for c in in_channels)
        n = round(3 * depth)
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, depthwise=depthwise)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, depthwise=depthwise)
        self.bu_conv2 = conv_block(c3, c3, 3, 2, depthwise)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise=depthwise)
        self.bu_conv1 = conv_block(c4, c4, 3, 2, depthwise)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise=depthwise)
        self.out_channels = [c3, c4, c5]
        self.out_strides = [int(s) for s in in_strides]

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        x3, x4, x5 = features
        fpn_out0 = self.lateral_conv0(x5)
        f_out0 = self.C3_p4(torch.cat([self._up(fpn_out0, x4), x4], dim=1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self._up(fpn_out1, x3), x3], dim=1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], dim=1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], dim=1))
        return [pan_out2, pan_out1, pan_out0]
