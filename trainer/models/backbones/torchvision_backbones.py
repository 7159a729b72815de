"""torchvision classification networks as multi-scale backbones (built with ``weights=None``).

Each network is cut into five stages: the stem (stage 0) and four stages whose outputs have
strides 4, 8, 16 and 32 (levels 2..5). ``out_levels`` picks the returned levels (default 3, 4, 5:
strides 8, 16, 32). ``frozen_stages = k`` freezes stages 0..k (mmdet convention, -1 freezes
nothing): their parameters stop requiring grad and their BatchNorm layers stay in eval mode.

``pretrained``: ``imagenet`` for torchvision's DEFAULT weights of the architecture (its cache,
``$TORCH_HOME``; see `trainer.models.pretrained`), or the path of a local file: torchvision's
classifier state dict (its classifier is left out), this backbone's own state dict, or a detector
checkpoint with ``backbone.`` keys. Loaded with `trainer.models.weights.load_weights`.
"""

from __future__ import annotations

import logging

import torch
import torchvision
from torch import nn

from trainer.models.pretrained import IMAGENET, imagenet_weights_file
from trainer.models.weights import load_weights
from trainer.registry import BACKBONES

log = logging.getLogger(__name__)

# arch -> (attribute names per stage 0..4, channels of stages 1..4, classifier prefixes)
_RESNET_STAGES = [["conv1", "bn1", "relu", "maxpool"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]
_SPECS: dict[str, tuple[list[list[str]], list[int], tuple[str, ...]]] = {
    "resnet18": (_RESNET_STAGES, [64, 128, 256, 512], ("fc.",)),
    "resnet34": (_RESNET_STAGES, [64, 128, 256, 512], ("fc.",)),
    "resnet50": (_RESNET_STAGES, [256, 512, 1024, 2048], ("fc.",)),
    "mobilenet_v3_small": (
        [
            ["features.0"],
            ["features.1"],
            ["features.2", "features.3"],
            [f"features.{i}" for i in range(4, 9)],
            [f"features.{i}" for i in range(9, 13)],
        ],
        [16, 24, 48, 576],
        ("classifier.",),
    ),
    "mobilenet_v3_large": (
        [
            ["features.0", "features.1"],
            ["features.2", "features.3"],
            [f"features.{i}" for i in range(4, 7)],
            [f"features.{i}" for i in range(7, 13)],
            [f"features.{i}" for i in range(13, 17)],
        ],
        [24, 40, 112, 960],
        ("classifier.",),
    ),
    "efficientnet_b0": (
        [
            ["features.0", "features.1"],
            ["features.2"],
            ["features.3"],
            ["features.4", "features.5"],
            ["features.6", "features.7", "features.8"],
        ],
        [24, 40, 112, 1280],
        ("classifier.",),
    ),
}

class TorchvisionBackbone(nn.Module):
    """A torchvision classifier cut into stages; ``forward`` returns the ``out_levels`` feature maps."""

    def __init__(
        self,
        *,
        arch: str,
        pretrained: str | None = None,
        out_levels: tuple[int, ...] = (3, 4, 5),
        frozen_stages: int = -1,
    ) -> None:
        super().__init__()
        stage_names, channels, classifier = _SPECS[arch]
        out_levels = tuple(int(level) for level in out_levels)
        if (
            not out_levels
            or any(level not in (2, 3, 4, 5) for level in out_levels)
            or list(out_levels) != sorted(set(out_levels))
        ):
            raise ValueError(f"out_levels must be increasing levels among 2..5 (strides 4..32), got {out_levels}")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be in -1..4, got {frozen_stages}")
        net = getattr(torchvision.models, arch)(weights=None)
        self.stages = nn.ModuleList(nn.Sequential(*(net.get_submodule(n) for n in names)) for names in stage_names)
        self.out_levels = out_levels
        self.out_channels = [channels[level - 2] for level in out_levels]
        self.out_strides = [2**level for level in out_levels]
        self.frozen_stages = frozen_stages
        # torchvision key -> our key, matched by tensor identity (same module objects).
        ours = {id(t): k for k, t in self.state_dict(keep_vars=True).items()}
        self._aliases = {k: ours[id(t)] for k, t in net.state_dict(keep_vars=True).items() if id(t) in ours}
        if pretrained:
            source = imagenet_weights_file(arch) if pretrained == IMAGENET else pretrained
            report = load_weights(self, source, allow_left_out=classifier, renames=self._aliases)
            log.info(report.summary())
        for stage in self.stages[: frozen_stages + 1]:
            for param in stage.parameters():
                param.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> TorchvisionBackbone:
        super().train(mode)
        for stage in self.stages[: self.frozen_stages + 1]:
            stage.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        last = self.out_levels[-1]
        for index, stage in enumerate(self.stages):
            x = stage(x)
            level = index + 1
            if level in self.out_levels:
                features.append(x)
            if level == last:
                break
        return features


def _register(arch: str) -> None:
    def build(
        *,
        pretrained: str | None = None,
        out_levels: tuple[int, ...] = (3, 4, 5),
        frozen_stages: int = -1,
    ) -> TorchvisionBackbone:
        return TorchvisionBackbone(arch=arch, pretrained=pretrained, out_levels=out_levels, frozen_stages=frozen_stages)

    build.__name__ = arch
    build.__qualname__ = arch
    build.__doc__ = f"torchvision {arch} backbone (`pretrained`: imagenet = torchvision's DEFAULT weights, or a file)."
    BACKBONES.add(arch, build, family="torchvision")


for _arch in _SPECS:
    _register(_arch)
