"""`anchor_free_decoupled`: the YOLOX decoupled head.

Per level (YOLOX ``yolo_head.py``): a 1x1 stem to ``hidden_channels``, a classification branch and
a regression branch of two 3x3 convs each; the regression branch ends in ``reg`` (4) and ``obj``
(1) 1x1 predictions, the classification branch in ``cls`` (C). Outputs are raw (no decoding):
``box_preds`` (B, A, 4) tx ty tw th, ``obj_logits`` (B, A), ``cls_logits`` (B, A, C), ``grid_xy``
(A, 2) integer cell indices (x, y) as float32, ``strides`` (A,) float32; anchors are grid cells,
row-major per level, levels in stride order. Grids follow the actual feature sizes of each call.
`decode` turns those outputs into boxes and scores (the one YOLOX decoding; the loss uses
`decode_boxes` too).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn
from torchvision.ops import box_convert

from trainer.constraints import AtLeastOne, Range
from trainer.models.backbones.cspdarknet import BaseConv, conv_block
from trainer.registry import HEADS


def decode_boxes(*, box_preds: torch.Tensor, grid_xy: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Raw (..., A, 4) tx ty tw th -> (..., A, 4) cx cy w h in input pixels: cx = (tx + gx) * s, w = exp(tw) * s."""
    stride = strides[:, None]
    centre = (box_preds[..., :2] + grid_xy) * stride
    size = torch.exp(box_preds[..., 2:]) * stride
    return torch.cat([centre, size], dim=-1)


def make_grid(height: int, width: int, stride: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(H*W, 2) cell indices (x, y), row-major, and the (H*W,) stride, both float32."""
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 2)
    return grid, torch.full((height * width,), float(stride), device=device)


@HEADS.register("anchor_free_decoupled", tasks=("detection",))
class AnchorFreeDecoupledHead(nn.Module):
    decode_inputs = frozenset({"box_preds", "obj_logits", "cls_logits", "grid_xy", "strides"})

    @staticmethod
    def decode(outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs -> boxes (B, A, 4) XYXY input pixels and scores (B, A, C) sigmoid(obj) * sigmoid(cls), float32."""
        boxes = decode_boxes(
            box_preds=outputs["box_preds"].float(), grid_xy=outputs["grid_xy"].float(),
            strides=outputs["strides"].float(),
        )
        scores = torch.sigmoid(outputs["obj_logits"].float())[..., None] * torch.sigmoid(outputs["cls_logits"].float())
        return box_convert(boxes, "cxcywh", "xyxy"), scores

    def __init__(
        self,
        *,
        in_channels: list[int],
        in_strides: list[int],
        num_classes: int,
        hidden_channels: Annotated[int, AtLeastOne] | None = None,
        depthwise: bool = False,
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
    ) -> None:
        """``hidden_channels`` defaults to ``in_channels[0]``, which is YOLOX's ``int(256 * width)``."""
        super().__init__()
        if len(in_channels) != len(in_strides):
            raise ValueError("anchor_free_decoupled needs one stride per input level")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        hidden = int(hidden_channels or in_channels[0])
        self.num_classes = num_classes
        self.strides = [int(s) for s in in_strides]
        self.stems = nn.ModuleList(BaseConv(int(c), hidden, 1, 1) for c in in_channels)
        self.cls_convs = nn.ModuleList(self._branch(hidden, depthwise) for _ in in_channels)
        self.reg_convs = nn.ModuleList(self._branch(hidden, depthwise) for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in in_channels)
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in [*self.cls_preds, *self.obj_preds]:
            nn.init.constant_(conv.bias, bias)

    @staticmethod
    def _branch(channels: int, depthwise: bool) -> nn.Sequential:
        return nn.Sequential(
            conv_block(channels, channels, 3, 1, depthwise), conv_block(channels, channels, 3, 1, depthwise)
        )

    def forward(self, features: list[torch.Tensor], *, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        if len(features) != len(self.stems):
            raise ValueError(f"anchor_free_decoupled expects {len(self.stems)} feature maps, got {len(features)}")
        boxes, objs, clss, grids, strides = [], [], [], [], []
        for i, x in enumerate(features):
            x = self.stems[i](x)
            cls_feat = self.cls_convs[i](x)
            reg_feat = self.reg_convs[i](x)
            boxes.append(self.reg_preds[i](reg_feat).flatten(2).transpose(1, 2))
            objs.append(self.obj_preds[i](reg_feat).flatten(1))
            clss.append(self.cls_preds[i](cls_feat).flatten(2).transpose(1, 2))
            grid, stride = make_grid(x.shape[-2], x.shape[-1], self.strides[i], x.device)
            grids.append(grid)
            strides.append(stride)
        return {
            "box_preds": torch.cat(boxes, dim=1),
            "obj_logits": torch.cat(objs, dim=1),
            "cls_logits": torch.cat(clss, dim=1),
            "grid_xy": torch.cat(grids, dim=0),
            "strides": torch.cat(strides, dim=0),
        }
