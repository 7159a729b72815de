"""Key maps for checkpoint formats: each turns a file's tensor names into this package's names.

`load_weights` tries every map on a file and keeps the one under which the most tensors fit the
model by name and shape, so a format is recognised by its keys. A map returns None for a key that
has no counterpart here (e.g. the official PIDNet training wrapper's loss buffers). `adapt` turns a
file tensor into ours where the format's conventions differ (official YOLOX: BGR input channels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from trainer.models.official.pidnet import pidnet_key
from trainer.models.official.yolox import yolox_key, yolox_tensor


@dataclass(frozen=True)
class KeyMap:
    """A named renaming of checkpoint keys (None: the key has no counterpart in this package) and the
    conversion of a tensor given its file key."""

    name: str
    rename: Callable[[str], str | None]
    adapt: Callable[[str, torch.Tensor], torch.Tensor] = lambda key, tensor: tensor


def _strip(prefix: str) -> Callable[[str], str | None]:
    def rename(key: str) -> str | None:
        return key[len(prefix) :] if key.startswith(prefix) else None

    return rename


def _same(key: str) -> str | None:
    return key


KEY_MAPS: tuple[KeyMap, ...] = (
    KeyMap("state dict", _same),
    KeyMap("DDP state dict, 'module.' keys", _strip("module.")),
    KeyMap("official YOLOX checkpoint, Megvii-BaseDetection/YOLOX", yolox_key, yolox_tensor),
    KeyMap("official PIDNet checkpoint, XuJiacong/PIDNet", pidnet_key),
    # a whole detector's file loaded into one backbone
    KeyMap("backbone part, 'backbone.' keys", _strip("backbone.")),
    KeyMap("backbone of an official YOLOX checkpoint", _strip("backbone.backbone."), yolox_tensor),
    KeyMap("backbone part, 'model.backbone.' keys", _strip("model.backbone.")),
    KeyMap("torchvision detector backbone, 'backbone.body.' keys", _strip("backbone.body.")),
)
