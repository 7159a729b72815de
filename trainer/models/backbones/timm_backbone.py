"""`timm`: any timm model that supports ``features_only`` as a multi-scale backbone (optional extra).

``model_name`` is a timm model name; ``python -c "import timm; print(timm.list_models('convnext*'))"``
lists them (``timm.list_models(pretrained=True)`` those with published weights). ``out_levels``
picks the feature maps of strides ``2**level`` (default 3, 4, 5: strides 8, 16, 32), as the
torchvision backbones do. ``pretrained``: false; true (or ``imagenet``) for timm's default pretrained
weights (timm downloads them into the Hugging Face cache); or the path of a state dict file of the
timm model (its classifier is left out) or of this backbone, loaded with
`trainer.models.weights.load_weights`.
timm is imported only when the backbone is built; without it the error says how to install it.
"""

from __future__ import annotations

import itertools
import logging

import torch
from torch import nn

from trainer.models.pretrained import IMAGENET
from trainer.models.weights import WeightsError, load_weights
from trainer.registry import BACKBONES, UnknownNameError

log = logging.getLogger(__name__)
INSTALL = "pip install 'trainer[timm]'"
LIST_COMMAND = "python -c \"import timm; print(timm.list_models('*'))\""
LIST_HINT = f"timm: any timm model as model_name (optional extra: {INSTALL}); list them with {LIST_COMMAND}"


class TimmNotInstalledError(ImportError):
    """timm is an optional extra; the message says how to install it."""


class UnknownTimmModelError(UnknownNameError):
    """A `model_name` timm does not know: the closest name and how to list them (not all 1000+)."""

    def __init__(self, *, name: str, choices: list[str]) -> None:
        super().__init__(kind="timm model", name=name, choices=choices)

    def message(self) -> str:
        hint = f"did you mean '{self.suggestion}'? " if self.suggestion else ""
        return f"unknown timm model '{self.name}'; {hint}list them with {LIST_COMMAND}"


def import_timm():
    """The timm module, or a TimmNotInstalledError saying how to install it."""
    try:
        import timm
    except ImportError:
        raise TimmNotInstalledError(f"backbone 'timm' needs the timm package: {INSTALL}") from None
    return timm


def original_names(key: str) -> list[str]:
    """The names a timm feature-model key may have in the full timm model: ``FeatureListNet`` joins
    the nested module names of its top level with ``_`` (``stages.0`` -> ``stages_0``)."""
    head, dot, rest = key.partition(".")
    pieces = head.split("_")
    names = []
    for joints in itertools.product("_.", repeat=len(pieces) - 1):
        joined = pieces[0] + "".join(joint + piece for joint, piece in zip(joints, pieces[1:]))
        names.append(joined + dot + rest)
    return names


def _levels_to_indices(model_name: str, reductions: list[int], out_levels: tuple[int, ...]) -> list[int]:
    indices = []
    for level in out_levels:
        found = [i for i, reduction in enumerate(reductions) if reduction == 2**level]
        if not found:
            levels = sorted({r.bit_length() - 1 for r in reductions})
            raise ValueError(
                f"timm model '{model_name}' has no feature map of stride {2**level} (level {level}); its strides "
                f"are {reductions}, so out_levels must be among {levels}"
            )
        indices.append(found[-1])
    return indices


@BACKBONES.register("timm", family="timm", note=LIST_HINT, requires="timm", install=INSTALL)
class TimmBackbone(nn.Module):
    """Any timm model as a backbone (``features_only``; `pip install 'trainer[timm]'`); list the names with
    `python -c "import timm; print(timm.list_models('*'))"`. ``pretrained``: false, true (timm's weights) or a file."""

    def __init__(
        self,
        *,
        model_name: str,
        pretrained: bool | str = False,
        out_levels: tuple[int, ...] = (3, 4, 5),
    ) -> None:
        super().__init__()
        timm = import_timm()
        out_levels = tuple(int(level) for level in out_levels)
        if not out_levels or list(out_levels) != sorted(set(out_levels)):
            raise ValueError(f"out_levels must be increasing levels (stride 2**level), got {out_levels}")
        if not timm.is_model(model_name):
            raise UnknownTimmModelError(name=model_name, choices=timm.list_models())
        download = pretrained is True or pretrained == IMAGENET
        try:
            self.body = timm.create_model(model_name, features_only=True, pretrained=download)
        except (OSError, RuntimeError) as error:  # no network and no cached file
            raise WeightsError(
                f"timm could not get pretrained weights for '{model_name}' ({str(error).rstrip('.')}); offline: "
                "put them in the Hugging Face cache ($HF_HOME) or give pretrained: PATH to a state dict file"
            ) from None
        reductions = [int(r) for r in self.body.feature_info.reduction()]
        self.indices = _levels_to_indices(model_name, reductions, out_levels)
        channels = self.body.feature_info.channels()
        self.out_levels = out_levels
        self.out_channels = [int(channels[i]) for i in self.indices]
        self.out_strides = [2**level for level in out_levels]
        if isinstance(pretrained, str) and not download:
            renames = {name: f"body.{key}" for key in self.body.state_dict() for name in original_names(key)}
            report = load_weights(self, pretrained, allow_left_out=True, renames=renames)
            log.info(report.summary())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(x)
        return [features[i] for i in self.indices]
