"""torchvision classification networks as multi-scale backbones (built with ``weights=None``).

Each network is cut into five stages: the stem (stage 0) and four stages whose outputs have
strides 4, 8, 16 and 32 (levels 2..5). ``out_levels`` picks the returned levels (default 3, 4, 5:
strides 8, 16, 32). ``frozen_stages = k`` freezes stages 0..k (mmdet convention, -1 freezes
nothing): their parameters stop requiring grad and their BatchNorm layers stay in eval mode.

``pretrained`` is the path of a local state dict file: either torchvision's full classifier state
dict (``torch.save(torchvision.models.resnet50().state_dict(), path)``; the classifier part is
ignored) or this backbone's own state dict. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from trainer.registry import BACKBONES

# arch -> (indices or attribute names per stage 0..4, channels of stages 1..4, classifier prefixes)
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

_PREFIXES = ("", "module.", "model.", "backbone.", "backbone.backbone.", "model.backbone.", "backbone.body.", "body.")


def load_pretrained(
    module: nn.Module,
    path: str,
    *,
    aliases: dict[str, str] | None = None,
    ignore_prefixes: tuple[str, ...] = (),
) -> None:
    """Load a local state dict file into ``module``, strictly, with a clear error when it does not fit.

    The file may hold a plain state dict or a checkpoint dict with a ``model`` / ``state_dict``
    entry. ``aliases`` renames file keys (e.g. torchvision names to this module's names) and
    ``ignore_prefixes`` lists file keys that are allowed to be left over (a classifier). Keys may
    carry one common prefix such as ``backbone.`` or ``module.``.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: '{path}'")
    state = torch.load(file, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"pretrained weights file '{path}' does not hold a state dict of tensors")
    own = module.state_dict()

    def renamed(prefix: str) -> dict[str, torch.Tensor]:
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        return {(aliases or {}).get(k, k): v for k, v in picked.items()}

    candidates = [renamed(prefix) for prefix in _PREFIXES]
    best = max(candidates, key=lambda c: len(own.keys() & c.keys()))
    missing = sorted(own.keys() - best.keys())
    unexpected = sorted(k for k in best.keys() - own.keys() if not k.startswith(ignore_prefixes))
    shapes = sorted(
        f"{k}: file {tuple(best[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own.keys() & best.keys()
        if best[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        name = type(module).__name__
        parts = [f"pretrained weights '{path}' do not match {name}"]
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                more = f" ... (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:5])}{more}")
        raise ValueError("; ".join(parts))
    module.load_state_dict({k: best[k] for k in own}, strict=True)


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
            load_pretrained(self, pretrained, aliases=self._aliases, ignore_prefixes=classifier)
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
    build.__doc__ = f"torchvision {arch} backbone (weights=None; `pretrained` = local state dict path)."
    BACKBONES.add(arch, build, family="torchvision")


for _arch in _SPECS:
    _register(_arch)
