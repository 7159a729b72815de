"""`anchor_decoupled`: the RetinaNet head (torchvision ``RetinaNetHead`` layout) plus its anchors.

Two towers of 4 x (3x3 conv [+ GroupNorm(32)] + ReLU), one for classes and one for boxes, shared
over levels; 9 anchors per location. Conv weights N(0, 0.01), biases 0, class bias
-log((1 - prior) / prior). Outputs ``cls_logits`` (B, A, C), ``box_regression`` (B, A, 4) and
``anchors`` (A, 4) XYXY in input pixels, all ordered (level, h, w, anchor).

Anchors follow torchvision's ``AnchorGenerator``: per level, sizes (x, int(x 2^(1/3)),
int(x 2^(2/3))) with x = ``anchor_scale`` * level stride (32..512 on strides 8..128), aspect ratios
(0.5, 1, 2), ratio-major then size, base anchors rounded, centred at (col * stride_w,
row * stride_h) with stride = image size // feature size, recomputed for every input size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainer.registry import HEADS

ASPECT_RATIOS = (0.5, 1.0, 2.0)


def base_anchors(sizes: tuple[float, ...], aspect_ratios: tuple[float, ...] = ASPECT_RATIOS) -> torch.Tensor:
    """(len(ratios) * len(sizes), 4) zero-centred XYXY anchors, rounded (torchvision ``generate_anchors``)."""
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    h_ratios = torch.sqrt(torch.as_tensor(aspect_ratios, dtype=torch.float32))
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


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
        if norm == "group":
            layers.append(nn.GroupNorm(32, channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _flatten(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, A*K, H, W) -> (B, H*W*A, K), order (h, w, a)."""
    b, _, h, w = x.shape
    return x.reshape(b, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, k)


@HEADS.register("anchor_decoupled", tasks=("detection",))
class AnchorDecoupledHead(nn.Module):
    def __init__(
        self,
        *,
        in_channels: list[int],
        in_strides: list[int],
        num_classes: int,
        norm: str = "none",
        anchor_scale: float = 4.0,
        prior_prob: float = 0.01,
    ) -> None:
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
        self.num_anchors = 3 * len(ASPECT_RATIOS)
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
        self.anchor_sizes = []
        for level, stride in enumerate(in_strides):
            x = anchor_scale * int(stride)
            sizes = (x, float(int(x * 2 ** (1 / 3))), float(int(x * 2 ** (2 / 3))))
            self.anchor_sizes.append(sizes)
            self.register_buffer(f"cell_anchors_{level}", base_anchors(sizes), persistent=False)

    def forward(self, features: list[torch.Tensor], *, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        if len(features) != len(self.anchor_sizes):
            raise ValueError(f"anchor_decoupled expects {len(self.anchor_sizes)} feature maps, got {len(features)}")
        cls = [_flatten(self.cls_logits(self.cls_tower(x)), self.num_classes) for x in features]
        reg = [_flatten(self.bbox_reg(self.reg_tower(x)), 4) for x in features]
        cells = [getattr(self, f"cell_anchors_{level}") for level in range(len(features))]
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in features]
        anchors = grid_anchors(cells, sizes, (int(image_size[0]), int(image_size[1])))
        return {"cls_logits": torch.cat(cls, dim=1), "box_regression": torch.cat(reg, dim=1), "anchors": anchors}
