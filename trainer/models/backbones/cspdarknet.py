"""YOLOX CSPDarknet (Focus stem, CSP stages, SPP) and its building blocks.

Follows Megvii-BaseDetection/YOLOX ``darknet.py`` / ``network_blocks.py``: module names match the
official ones (``stem``, ``dark2`` .. ``dark5``, ``conv``/``bn``), so an official checkpoint's
backbone part (keys under ``backbone.backbone.``) loads with ``pretrained`` (through
`trainer.models.weights.load_weights`; the file's neck and head are left out). BatchNorm uses
eps 1e-3 and momentum 0.03, as YOLOX sets them when it builds a model.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.pretrained import IMAGENET, no_published_weights
from trainer.models.weights import load_weights
from trainer.registry import BACKBONES

log = logging.getLogger(__name__)
_OFFICIAL_HINT = (
    "give the path of an official YOLOX checkpoint (yolox_s.pth ..., Megvii-BaseDetection/YOLOX releases) as "
    "`pretrained` for its backbone, or as model.checkpoint for the whole detector"
)


class BaseConv(nn.Module):
    """Conv2d ("same" padding, no bias) -> BatchNorm -> SiLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise k x k BaseConv followed by a pointwise 1 x 1 BaseConv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.pconv = BaseConv(in_channels, out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def conv_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, depthwise: bool) -> nn.Module:
    """``DWConv`` when depthwise, else ``BaseConv`` (YOLOX's ``Conv = DWConv if depthwise else BaseConv``)."""
    cls = DWConv if depthwise else BaseConv
    return cls(in_channels, out_channels, kernel_size, stride)


class Bottleneck(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.conv2 = conv_block(hidden, out_channels, 3, 1, depthwise)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """CSP block (YOLOv5 C3): two 1x1 branches, n bottlenecks on one, concat, 1x1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), dim=1))


class SPPBottleneck(nn.Module):
    """1x1 conv, max pools (5, 9, 13) at stride 1 concatenated with their input, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


class Focus(nn.Module):
    """Space-to-depth (2x2 pixels -> 4x channels) then a BaseConv. Odd sizes are zero-padded by one."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        top_left, top_right = x[..., ::2, ::2], x[..., ::2, 1::2]
        bottom_left, bottom_right = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat((top_left, bottom_left, top_right, bottom_right), dim=1))


class CSPDarknet(nn.Module):
    """YOLOX backbone; returns dark3, dark4, dark5 (strides 8, 16, 32).

    Channels are ``int(64 * width) * (4, 8, 16)``; the CSP stages repeat
    ``max(round(3 * depth), 1) * (1, 3, 3, 1)`` bottlenecks.
    """

    def __init__(
        self,
        *,
        depth: float,
        width: float,
        depthwise: bool = False,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        base = int(width * 64)
        n = max(round(depth * 3), 1)
        self.depth = depth
        self.width = width
        self.depthwise = depthwise
        self.stem = Focus(3, base, kernel_size=3)
        self.dark2 = nn.Sequential(
            conv_block(base, base * 2, 3, 2, depthwise), CSPLayer(base * 2, base * 2, n=n, depthwise=depthwise)
        )
        self.dark3 = nn.Sequential(
            conv_block(base * 2, base * 4, 3, 2, depthwise), CSPLayer(base * 4, base * 4, n=n * 3, depthwise=depthwise)
        )
        self.dark4 = nn.Sequential(
            conv_block(base * 4, base * 8, 3, 2, depthwise), CSPLayer(base * 8, base * 8, n=n * 3, depthwise=depthwise)
        )
        self.dark5 = nn.Sequential(
            conv_block(base * 8, base * 16, 3, 2, depthwise),
            SPPBottleneck(base * 16, base * 16),
            CSPLayer(base * 16, base * 16, n=n, shortcut=False, depthwise=depthwise),
        )
        self.out_channels = [base * 4, base * 8, base * 16]
        self.out_strides = [8, 16, 32]
        if pretrained == IMAGENET:
            raise no_published_weights("cspdarknet", instead=_OFFICIAL_HINT)
        if pretrained:
            log.info(load_weights(self, pretrained, allow_left_out=()).summary())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.dark3(self.dark2(self.stem(x)))
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return [c3, c4, c5]


# name -> (depth, width, depthwise), as in the official YOLOX exps
_SIZES: dict[str, tuple[float, float, bool]] = {
    "nano": (0.33, 0.25, True),
    "tiny": (0.33, 0.375, False),
    "s": (0.33, 0.50, False),
    "m": (0.67, 0.75, False),
    "l": (1.0, 1.0, False),
    "x": (1.33, 1.25, False),
}


def _register(size: str, depth: float, width: float, depthwise: bool) -> None:
    def build(*, pretrained: str | None = None) -> CSPDarknet:
        return CSPDarknet(depth=depth, width=width, depthwise=depthwise, pretrained=pretrained)

    name = f"cspdarknet_{size}"
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"YOLOX CSPDarknet-{size} (depth {depth}, width {width}, depthwise {depthwise})."
    BACKBONES.add(name, build, family="cspdarknet", depth=depth, width=width, depthwise=depthwise)


for _size, (_depth, _width, _depthwise) in _SIZES.items():
    _register(_size, _depth, _width, _depthwise)
