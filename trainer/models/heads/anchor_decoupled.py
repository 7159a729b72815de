"""`anchor_decoupled`: the RetinaNet head (torchvision ``RetinaNetHead`` layout) plus its anchors.

Two towers of 4 x (3x3 conv [+ GroupNorm] + ReLU), one for classes and one for boxes, shared
over levels (GroupNorm by default, as torchvision's ``retinanet_resnet50_fpn_v2``: from scratch on
shapes the towers without it reached val mAP50 0.09 in 5 epochs, with it 0.52 after 3 of 5,
docs/benchmarks.md); 9 anchors per location. Conv weights N(0, 0.01), biases 0, class bias
-log((1 - prior) / prior). Outputs ``cls_logits`` (B, A, C), ``box_regression`` (B, A, 4) and
``anchors`` (A, 4) XYXY in input pixels, all ordered (level, h, w, anchor).

Anchors follow torchvision's ``AnchorGenerator``: per level, sizes (x, int(x 2^(1/3)),
int(x 2^(2/3))) with x = ``anchor_scale`` * level stride (scale 4: 32..512 on strides 8..128; by
default the scale follows the input size, ``auto_anchor_scale``) or the ``anchor_sizes`` given, aspect ratios
(0.5, 1, 2), ratio-major then size, base anchors rounded, centred at (col * stride_w,
row * stride_h) with stride = image size // feature size, recomputed for every input size.
`decode` turns the outputs into boxes and scores (the one RetinaNet decoding; the loss uses
`decode_boxes` too).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from trainer.constraints import Positive, Range
from trainer.registry import HEADS
from trainer.specs import AutoOptimizerDefaults

ASPECT_RATIOS = (0.5, 1.0, 2.0)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # torchvision's clamp of the log-size deltas


def decode_boxes(*, box_regression: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(..., A, 4) dx dy dw dh relative to (A, 4) XYXY anchors -> (..., A, 4) XYXY pixels, in the regression's
    dtype (torchvision ``BoxCoder`` with weights 1, dw and dh clamped at ``BBOX_XFORM_CLIP``)."""
    anchors = anchors.to(box_regression.dtype)
    width = anchors[..., 2] - anchors[..., 0]
    height = anchors[..., 3] - anchors[..., 1]
    centre_x = box_regression[..., 0] * width + (anchors[..., 0] + 0.5 * width)
    centre_y = box_regression[..., 1] * height + (anchors[..., 1] + 0.5 * height)
    half_w = 0.5 * (torch.exp(box_regression[..., 2].clamp(max=BBOX_XFORM_CLIP)) * width)
    half_h = 0.5 * (torch.exp(box_regression[..., 3].clamp(max=BBOX_XFORM_CLIP)) * height)
    return torch.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], dim=-1)


def base_anchors(sizes: tuple[float, ...], aspect_ratios: tuple[float, ...] = ASPECT_RATIOS) -> torch.Tensor:
    """(len(ratios) * len(sizes), 4) zero-centred XYXY anchors, rounded (torchvision ``generate_anchors``)."""
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    h_ratios = torch.sqrt(torch.as_tensor(aspect_ratios, dtype=torch.float32))
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def auto_anchor_scale(image_size: tuple[int, int]) -> float:
    """Anchor size / stride for an input size: torchvision's 4 (32 px on stride 8) from 512 px up,
    falling linearly with the shorter side to 2 at 256 px and below. Small inputs have small
    objects: a 16 px object has IoU 0.25 with a 32 px anchor, under the 0.4 background threshold,
    and gets only its one low-quality match; anchors under 2x the stride miss objects between grid
    points (docs/benchmarks.md: gts with an anchor at IoU >= 0.5 on 128 px digit scenes, scale 4:
    24%, 2: 74%; 64 px shapes: 86% and 100%)."""
    return min(4.0, max(2.0, 4.0 * min(image_size) / 512))


def octave_sizes(base: float) -> tuple[float, float, float]:
    """torchvision's three sizes per level: (x, int(x 2^(1/3)), int(x 2^(2/3)))."""
    return (float(base), float(int(base * 2 ** (1 / 3))), float(int(base * 2 ** (2 / 3))))


def grid_anchors(
    cell_anchors: list[torch.Tensor], feature_sizes: list[tuple[int, int]], image_size: tuple[int, int]
) -> torch.Tensor:
    """(sum_l H_l * W_l * K, 4) anchors for an input of ``image_size`` (H, W), order (level, h, w, k)."""
    out = []
    for base, (fh, fw) in zip(cell_anchors, feature_sizes):
        stride_h, stride_w = image_size[0] // fh, image_size[1] // fw
        ys = torch.arange(fh, device=base.device, dtype=torch.float32) * stride_h
        xs = torch.arange(fw, device=base.device, dtype=torch.float32) * stride_w
        shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4)
        out.append((shifts + base.float().reshape(1, -1, 4)).reshape(-1, 4))
    return torch.cat(out, dim=0)


def _tower(channels: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(4):
        layers.append(nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none"))
        if norm == "group":  # 32 groups (torchvision) from 64 channels; fewer, of >= 2 channels, below
            layers.append(nn.GroupNorm(math.gcd(32, max(1, channels // 2)), channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _flatten(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, A*K, H, W) -> (B, H*W*A, K), order (h, w, a)."""
    b, _, h, w = x.shape
    return x.reshape(b, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, k)


@HEADS.register("anchor_decoupled", tasks=("detection",))
class AnchorDecoupledHead(nn.Module):
    decode_inputs = frozenset({"cls_logits", "box_regression", "anchors"})
    # from scratch on shapes / digits: SGD 0.04 reached mAP50 0.36, AdamW 1e-3 0.54 (docs/benchmarks.md);
    # long schedules: torchvision's RetinaNet recipe (0.01 at batch 16)
    auto_optimizer = AutoOptimizerDefaults(adamw=(1e-3, 0.05), sgd_per_image=(0.01 / 16, 1e-4),
                                           label="detection/anchor_based")

    @staticmethod
    def decode(outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs -> boxes (B, A, 4) XYXY input pixels and scores (B, A, C) sigmoid(cls), float32."""
        boxes = decode_boxes(box_regression=outputs["box_regression"].float(), anchors=outputs["anchors"].float())
        return boxes, torch.sigmoid(outputs["cls_logits"].float())

    def __init__(
        self,
        *,
        in_channels: list[int],
        in_strides: list[int],
        num_classes: int,
        norm: str = "group",
        anchor_scale: Annotated[float, Positive] | None = None,
        anchor_sizes: list[list[Annotated[float, Positive]]] | None = None,
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
    ) -> None:
        """Anchor sizes per level: ``anchor_sizes`` (one list per level, the same count on every
        level), else ``anchor_scale`` x stride (torchvision's three octave sizes), else
        ``auto_anchor_scale`` of each input size (4 from 512 px up, as torchvision; 2 up to 256 px)."""
        super().__init__()
        if len({int(c) for c in in_channels}) != 1:
            raise ValueError(
                f"anchor_decoupled needs equal channels on every level (use an fpn neck), got {list(in_channels)}"
            )
        if len(in_channels) != len(in_strides):
            raise ValueError("anchor_decoupled needs one stride per input level")
        if norm not in ("none", "group"):
            raise ValueError(f"norm must be 'none' or 'group', got '{norm}'")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        channels = int(in_channels[0])
        self.num_classes = num_classes
        if anchor_sizes is not None and (
            len(anchor_sizes) != len(in_strides) or len({len(level) for level in anchor_sizes}) != 1
        ):
            raise ValueError(
                f"anchor_sizes needs one list per level ({len(in_strides)}), each of the same length, "
                f"got {anchor_sizes}"
            )
        self.strides = [int(s) for s in in_strides]
        self.anchor_scale = anchor_scale
        self.anchor_sizes = [tuple(float(v) for v in level) for level in anchor_sizes] if anchor_sizes else None
        self.num_anchors = (len(self.anchor_sizes[0]) if self.anchor_sizes else 3) * len(ASPECT_RATIOS)
        self.cls_tower = _tower(channels, norm)
        self.reg_tower = _tower(channels, norm)
        self.cls_logits = nn.Conv2d(channels, self.num_anchors * num_classes, 3, padding=1)
        self.bbox_reg = nn.Conv2d(channels, self.num_anchors * 4, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0.0)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def sizes_for(self, image_size: tuple[int, int]) -> list[tuple[float, ...]]:
        """The anchor sizes of every level for an input of ``image_size`` (H, W)."""
        if self.anchor_sizes is not None:
            return list(self.anchor_sizes)
        scale = self.anchor_scale if self.anchor_scale is not None else auto_anchor_scale(image_size)
        return [octave_sizes(scale * stride) for stride in self.strides]

    def forward(self, features: list[torch.Tensor], *, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        if len(features) != len(self.strides):
            raise ValueError(f"anchor_decoupled expects {len(self.strides)} feature maps, got {len(features)}")
        cls = [_flatten(self.cls_logits(self.cls_tower(x)), self.num_classes) for x in features]
        reg = [_flatten(self.bbox_reg(self.reg_tower(x)), 4) for x in features]
        device = features[0].device
        cells = [base_anchors(sizes).to(device) for sizes in self.sizes_for((int(image_size[0]), int(image_size[1])))]
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in features]
        anchors = grid_anchors(cells, sizes, (int(image_size[0]), int(image_size[1])))
        return {"cls_logits": torch.cat(cls, dim=1), "box_regression": torch.cat(reg, dim=1), "anchors": anchors}
