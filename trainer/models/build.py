"""Build the network a recipe describes: backbone -> neck -> head, or one full model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer.head_choice import choose_head
from trainer.registry import BACKBONES, FULL_MODELS, HEADS, NECKS


class ComposedModel(nn.Module):
    """backbone -> (neck) -> head; returns the head's dict of named outputs."""

    def __init__(self, *, backbone: nn.Module, neck: nn.Module | None, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck if neck is not None else nn.Identity()
        self.head = head

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        features = self.neck(features)
        return self.head(features, image_size=(images.shape[-2], images.shape[-1]))


class ModelBuildError(ValueError):
    """A component constructor refused its options; the message names the recipe place."""


def _options(entry: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (entry or {}).items() if key != "name"}


def _construct(place: str, factory: Any, **options: Any) -> nn.Module:
    """`factory(**options)`; a ValueError or TypeError from the constructor names `model.architecture.<place>`."""
    try:
        return factory(**options)
    except (ValueError, TypeError) as error:
        raise ModelBuildError(f"model.architecture.{place}: {error}") from error


def build_model(*, task: str, architecture: dict[str, Any], criteria: list[str], num_classes: int) -> nn.Module:
    kind, name = choose_head(task=task, criteria=criteria, architecture=architecture)
    if kind == "full":
        return _construct("full", FULL_MODELS.get(name), num_classes=num_classes, **_options(architecture.get("full")))
    backbone_entry = architecture.get("backbone")
    if backbone_entry is None:
        raise ValueError("model.architecture.backbone is needed unless model.architecture.full names a whole model")
    backbone = _construct("backbone", BACKBONES.get(backbone_entry["name"]), **_options(backbone_entry))
    channels, strides = list(backbone.out_channels), list(backbone.out_strides)
    neck = None
    if architecture.get("neck") is not None:
        neck_entry = architecture["neck"]
        neck = _construct("neck", NECKS.get(neck_entry["name"]), in_channels=channels, in_strides=strides,
                          **_options(neck_entry))
        channels, strides = list(neck.out_channels), list(neck.out_strides)
    head_options = _options(architecture.get("head")) if (architecture.get("head") or {}).get("name") == name else {}
    head = _construct("head", HEADS.get(name), in_channels=channels, in_strides=strides, num_classes=num_classes,
                      **head_options)
    return ComposedModel(backbone=backbone, neck=neck, head=head)


def output_names(*, model: nn.Module, image_size: tuple[int, int], training: bool) -> set[str]:
    """Names of the model's outputs, from one forward of a tiny batch; the model's mode and buffers
    (BatchNorm statistics) are restored afterwards."""
    was_training = model.training
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    model.train(training)
    parameter = next(model.parameters())
    with torch.no_grad():
        images = torch.zeros(2, 3, *image_size, device=parameter.device, dtype=parameter.dtype)
        names = set(model(images))
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    model.train(was_training)
    return names
