"""PIDNet (Xu et al., CVPR 2023): proportional (detail), integral (context) and derivative
(boundary) branches. Layout and module names follow the official XuJiacong/PIDNet (commit 4c158cf)
so official ImageNet / Cityscapes weights load by name (outputs equal to the official model's);
the code is our own. ``pretrained`` (a file) loads through `trainer.models.weights.load_weights`
as fine-tuning does: what fits by name and shape; classifiers for another class count and tensors
the file lacks keep their initial values, and the report says so.

Outputs: training -> ``logits_p`` (P aux), ``logits``, ``boundary_logits`` (B, 1, .) at 1/8 of the
input; eval -> ``logits`` upsampled bilinearly to the input size (``align_corners=True`` as the
official test code and our loss). ``augment=False`` builds no aux heads and always returns
``logits`` at the input size. The official in-place ReLUs make the aux heads see ReLU'd P / D
features; we do that explicitly. Inputs need not be multiples of 8 (the official model needs it).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.pretrained import IMAGENET, no_published_weights
from trainer.models.weights import load_weights
from trainer.registry import FULL_MODELS

log = logging.getLogger(__name__)

# size -> (m, n, planes, ppm_planes, head_planes), Table 1 of the paper / official get_seg_model.
SIZES = {"s": (2, 3, 32, 96, 128), "m": (2, 3, 64, 96, 128), "l": (3, 4, 64, 112, 256)}


def _up(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _conv_bn(cin: int, cout: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


def _bn_relu_conv(cin: int, cout: int, k: int = 1, groups: int = 1, pool: nn.Module | None = None) -> nn.Sequential:
    layers = [] if pool is None else [pool]
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False)
    return nn.Sequential(*layers, nn.BatchNorm2d(cin), nn.ReLU(), conv)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, no_relu: bool = False
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample, self.no_relu = downsample, no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = out + (x if self.downsample is None else self.downsample(x))
        return out if self.no_relu else F.relu(out)


class Bottleneck(nn.Module):
    expansion = 2

    def __init__(
        self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, no_relu: bool = True
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 2)
        self.downsample, self.no_relu = downsample, no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        out = self.bn3(self.conv3(out)) + (x if self.downsample is None else self.downsample(x))
        return out if self.no_relu else F.relu(out)


def _block(block: type, cin: int, planes: int, stride: int = 1, no_relu: bool | None = None) -> nn.Module:
    """One block with the official 1x1 projection shortcut; ``no_relu=None`` keeps the class default."""
    downsample = None
    if stride != 1 or cin != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(planes * block.expansion)
        )
    if no_relu is None:
        return block(cin, planes, stride, downsample)
    return block(cin, planes, stride, downsample, no_relu=no_relu)


def _layer(block: type, cin: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """Official _make_layer: the first block keeps its class default ``no_relu``, the last has none."""
    layers = [_block(block, cin, planes, stride)]
    layers += [block(planes * block.expansion, planes, no_relu=i == blocks - 1) for i in range(1, blocks)]
    return nn.Sequential(*layers)


class SegmentHead(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv1x1 (official ``segmenthead``)."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))


class PAPPM(nn.Module):
    """Parallel aggregation PPM (S, M); ``parallel=False`` gives DAPPM (L), the cascaded one."""

    def __init__(self, cin: int, mid: int, cout: int, parallel: bool = True) -> None:
        super().__init__()
        self.parallel = parallel
        self.scale0 = _bn_relu_conv(cin, mid)
        for i, (k, s) in enumerate([(5, 2), (9, 4), (17, 8)], start=1):
            setattr(self, f"scale{i}", _bn_relu_conv(cin, mid, pool=nn.AvgPool2d(k, s, k // 2)))
        self.scale4 = _bn_relu_conv(cin, mid, pool=nn.AdaptiveAvgPool2d((1, 1)))
        if parallel:
            self.scale_process = _bn_relu_conv(mid * 4, mid * 4, 3, groups=4)
        else:
            for i in range(1, 5):
                setattr(self, f"process{i}", _bn_relu_conv(mid, mid, 3))
        self.compression = _bn_relu_conv(mid * 5, cout)
        self.shortcut = _bn_relu_conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = [self.scale0(x)]
        for i in range(1, 5):
            pooled = _up(getattr(self, f"scale{i}")(x), size)
            if self.parallel:
                feats.append(pooled + feats[0])
            else:
                feats.append(getattr(self, f"process{i}")(pooled + feats[-1]))
        if self.parallel:
            feats = [feats[0], self.scale_process(torch.cat(feats[1:], 1))]
        return self.compression(torch.cat(feats, 1)) + self.shortcut(x)


class PagFM(nn.Module):
    """Pixel-attention-guided fusion of the I branch (y) into the P branch (x)."""

    def __init__(self, cin: int, mid: int) -> None:
        super().__init__()
        self.f_x, self.f_y = _conv_bn(cin, mid), _conv_bn(cin, mid)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        sim = torch.sigmoid((self.f_x(x) * _up(self.f_y(y), size)).sum(1, keepdim=True))
        return (1 - sim) * x + sim * _up(y, size)


class LightBag(nn.Module):
    """Light boundary-attention-guided fusion (official ``Light_Bag``, S and M)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_p, self.conv_i = _conv_bn(cin, cout), _conv_bn(cin, cout)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(d)
        return self.conv_p((1 - att) * i + p) + self.conv_i(i + att * p)


class Bag(nn.Module):
    """Boundary-attention-guided fusion (official ``Bag``, L)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _bn_relu_conv(cin, cout, 3)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(d)
        return self.conv(att * p + (1 - att) * i)


@FULL_MODELS.register("pidnet", tasks=("segmentation",))
class PIDNet(nn.Module):
    def __init__(
        self, *, num_classes: int, size: str = "s", pretrained: str | None = None, augment: bool = True
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"pidnet size must be one of {sorted(SIZES)}, got '{size}'")
        m, n, p, ppm, head = SIZES[size]
        self.augment = augment
        # I branch
        stem = [(nn.Conv2d(c, p, 3, 2, 1), nn.BatchNorm2d(p), nn.ReLU()) for c in (3, p)]
        self.conv1 = nn.Sequential(*stem[0], *stem[1])
        self.layer1 = _layer(BasicBlock, p, p, m)
        self.layer2 = _layer(BasicBlock, p, p * 2, m, stride=2)
        self.layer3 = _layer(BasicBlock, p * 2, p * 4, n, stride=2)
        self.layer4 = _layer(BasicBlock, p * 4, p * 8, n, stride=2)
        self.layer5 = _layer(Bottleneck, p * 8, p * 8, 2, stride=2)
        # P branch
        self.compression3 = _conv_bn(p * 4, p * 2)
        self.compression4 = _conv_bn(p * 8, p * 2)
        self.pag3, self.pag4 = PagFM(p * 2, p), PagFM(p * 2, p)
        self.layer3_ = _layer(BasicBlock, p * 2, p * 2, m)
        self.layer4_ = _layer(BasicBlock, p * 2, p * 2, m)
        self.layer5_ = _layer(Bottleneck, p * 2, p * 2, 1)
        # D branch
        if m == 2:
            self.layer3_d = _block(BasicBlock, p * 2, p, no_relu=True)
            self.layer4_d = _layer(Bottleneck, p, p, 1)
            self.diff3 = _conv_bn(p * 4, p, 3)
            self.spp, self.dfm = PAPPM(p * 16, ppm, p * 4), LightBag(p * 4, p * 4)
        else:
            self.layer3_d = _block(BasicBlock, p * 2, p * 2, no_relu=True)
            self.layer4_d = _block(BasicBlock, p * 2, p * 2, no_relu=True)
            self.diff3 = _conv_bn(p * 4, p * 2, 3)
            self.spp, self.dfm = PAPPM(p * 16, ppm, p * 4, parallel=False), Bag(p * 4, p * 4)
        self.diff4 = _conv_bn(p * 8, p * 2, 3)
        self.layer5_d = _layer(Bottleneck, p * 2, p * 2, 1)
        # heads
        if augment:
            self.seghead_p = SegmentHead(p * 2, head, num_classes)
            self.seghead_d = SegmentHead(p * 2, p, 1)
        self.final_layer = SegmentHead(p * 4, head, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if pretrained == IMAGENET:
            raise no_published_weights("pidnet", instead=(
                "download the official ImageNet file (PIDNet_S_ImageNet.pth.tar ..., linked from XuJiacong/PIDNet) "
                "and give its path"))
        if pretrained is not None:
            log.info(load_weights(self, pretrained, strict=False).summary())

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.relu(self.layer1(self.conv1(images)))
        x = F.relu(self.layer2(x))
        size = x.shape[-2:]  # 1/8 of the input
        x_p, x_d = self.layer3_(x), self.layer3_d(x)
        x = F.relu(self.layer3(x))
        x_p = F.relu(self.pag3(x_p, self.compression3(x)))
        x_d = F.relu(x_d + _up(self.diff3(x), size))
        feat_p = x_p  # aux P head input (ReLU'd, as the official in-place ReLU leaves it)
        x = F.relu(self.layer4(x))
        x_p, x_d = self.layer4_(x_p), self.layer4_d(x_d)
        x_p = F.relu(self.pag4(x_p, self.compression4(x)))
        x_d = F.relu(x_d + _up(self.diff4(x), size))
        feat_d = x_d  # aux D head input
        x_p, x_d = self.layer5_(x_p), self.layer5_d(x_d)
        x = _up(self.spp(self.layer5(x)), size)
        logits = self.final_layer(self.dfm(x_p, x, x_d))
        if self.training and self.augment:
            return {"logits_p": self.seghead_p(feat_p), "logits": logits, "boundary_logits": self.seghead_d(feat_d)}
        return {"logits": F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=True)}
