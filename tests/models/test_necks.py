"""Every registered neck: forward/backward shapes; fpn extra levels; YOLOX parameter counts."""

from __future__ import annotations

import pytest
import torch

from trainer.components import load_builtin_components
from trainer.registry import BACKBONES, HEADS, NECKS

load_builtin_components()  # every registered component gets the generic tests below

IN_CHANNELS = [16, 32, 64]
IN_STRIDES = [8, 16, 32]


def _features(height: int = 64, width: int = 96, batch: int = 2) -> list[torch.Tensor]:
    return [
        torch.randn(batch, c, -(-height // s), -(-width // s), requires_grad=True)
        for c, s in zip(IN_CHANNELS, IN_STRIDES)
    ]


def test_expected_names_registered():
    assert {"pafpn", "fpn"} <= set(NECKS.names())


@pytest.mark.parametrize("name", NECKS.names())
@pytest.mark.parametrize("size", [(64, 96), (100, 70)])
def test_forward_backward_shapes(name, size):
    torch.manual_seed(0)
    neck = NECKS.get(name)(in_channels=IN_CHANNELS, in_strides=IN_STRIDES)
    features = _features(*size)
    outputs = neck(features)
    assert isinstance(outputs, list)
    assert len(outputs) == len(neck.out_channels) == len(neck.out_strides)
    for out, channels, stride in zip(outputs, neck.out_channels, neck.out_strides):
        assert out.shape == (2, channels, -(-size[0] // stride), -(-size[1] // stride))
    sum(o.mean() for o in outputs).backward()
    assert all(f.grad is not None for f in features)
    assert all(p.grad is not None for p in neck.parameters())


def test_pafpn_keeps_channels_and_strides():
    neck = NECKS.get("pafpn")(in_channels=IN_CHANNELS, in_strides=IN_STRIDES, depthwise=True)
    assert neck.out_channels == IN_CHANNELS and neck.out_strides == IN_STRIDES
    with pytest.raises(ValueError, match="3 input levels"):
        NECKS.get("pafpn")(in_channels=[16, 32], in_strides=[8, 16])


@pytest.mark.parametrize("extra", ["p6p7", "p6p7_c5"])
def test_fpn_p6p7_gives_retinanet_levels(extra):
    neck = NECKS.get("fpn")(in_channels=IN_CHANNELS, in_strides=IN_STRIDES, out_channels=32, extra_levels=extra)
    p6_input = 32 if extra == "p6p7" else IN_CHANNELS[-1]  # P5 (torchvision v1) or C5 (v2)
    assert neck.fpn.extra_blocks.p6.in_channels == p6_input
    assert neck.out_strides == [8, 16, 32, 64, 128] and neck.out_channels == [32] * 5
    outputs = neck(_features(256, 320))
    assert [tuple(o.shape[2:]) for o in outputs] == [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    with pytest.raises(ValueError, match="extra_levels"):
        NECKS.get("fpn")(in_channels=IN_CHANNELS, in_strides=IN_STRIDES, extra_levels="p6")


# Official YOLOX parameter counts (README, 80 classes): nano 0.91M, tiny 5.06M, s 9.0M.
@pytest.mark.parametrize("size, expected", [("nano", 0.91e6), ("tiny", 5.06e6), ("s", 8.97e6)])
def test_yolox_backbone_neck_head_match_official_parameter_count(size, expected):
    backbone = BACKBONES.get(f"cspdarknet_{size}")()
    neck = NECKS.get("pafpn")(
        in_channels=backbone.out_channels,
        in_strides=backbone.out_strides,
        depth=backbone.depth,
        depthwise=backbone.depthwise,
    )
    head = HEADS.get("anchor_free_decoupled")(
        in_channels=neck.out_channels, in_strides=neck.out_strides, num_classes=80, depthwise=backbone.depthwise
    )
    total = sum(p.numel() for m in (backbone, neck, head) for p in m.parameters())
    assert abs(total - expected) / expected < 0.01, total
