"""Official YOLOX checkpoints (Megvii-BaseDetection/YOLOX ``yolox_nano.pth`` .. ``yolox_x.pth``).

The file is ``{"model": state_dict}`` of ``YOLOX(backbone=YOLOPAFPN(...), head=YOLOXHead(...))``:
``backbone.backbone.*`` is the CSPDarknet (our ``backbone.*``), the rest of ``backbone.*`` is the
PAFPN (our ``neck.*``), and ``head.*`` is the decoupled head, whose module names (``stems``,
``cls_convs``, ``reg_convs``, ``cls_preds``, ``reg_preds``, ``obj_preds``) are ours too.

The official models read BGR images with 0..255 pixel values (``ValTransform(legacy=False)``: no
scaling, no mean/std). The stem's input channels are reordered on load (`yolox_tensor`), so the
model gives the official outputs on RGB images; recipes scale to 0..255 with
``{name: normalize, mean: [0, 0, 0], std: [0.00392156862745098, ...]}`` (1/255).
"""

from __future__ import annotations

import torch

STEM_WEIGHT = "backbone.backbone.stem.conv.conv.weight"
# Focus concatenates 4 pixel phases of 3 channels each; BGR -> RGB within each phase
_BGR_TO_RGB = [2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9]


def yolox_key(key: str) -> str | None:
    """An official YOLOX key -> the key of a cspdarknet + pafpn + anchor_free_decoupled model."""
    if key.startswith("backbone.backbone."):
        return "backbone." + key[len("backbone.backbone.") :]
    if key.startswith("backbone."):
        return "neck." + key[len("backbone.") :]
    if key.startswith("head."):
        return key
    return None


def yolox_tensor(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """The official stem convolution takes BGR channels; ours takes RGB (other tensors unchanged)."""
    if key == STEM_WEIGHT and tensor.ndim == 4 and tensor.shape[1] == len(_BGR_TO_RGB):
        return tensor[:, _BGR_TO_RGB]
    return tensor
