"""RetinaNet head anchor options: sizes that follow the input size by default, or given per level."""

from __future__ import annotations

import pytest
import torch

from trainer.models.heads.anchor_decoupled import auto_anchor_scale
from trainer.registry import HEADS

STRIDES = [8, 16, 32, 64, 128]


def _head(**options):
    return HEADS.get("anchor_decoupled")(in_channels=[32] * 5, in_strides=STRIDES, num_classes=3, **options)


def _features(size: int) -> list[torch.Tensor]:
    return [torch.zeros(1, 32, max(1, size // s), max(1, size // s)) for s in STRIDES]


def _square_widths(anchors: torch.Tensor) -> set[float]:
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    return {float(w) for w, h in zip(widths, heights) if w == h}


@pytest.mark.parametrize(("size", "scale"), [((48, 48), 2.0), ((128, 128), 2.0), ((256, 320), 2.0),
                                             ((384, 640), 3.0), ((512, 512), 4.0), ((1333, 800), 4.0)])
def test_the_auto_scale_follows_the_shorter_side(size, scale) -> None:
    assert auto_anchor_scale(size) == scale


def test_default_anchors_fit_small_objects_of_small_inputs() -> None:
    head = _head()
    small = head(_features(128), image_size=(128, 128))["anchors"]
    assert min(_square_widths(small)) == 16.0  # 16, 20, 25 px on stride 8: a 16-20 px digit gets IoU >= 0.5 matches
    large = head(_features(512), image_size=(512, 512))["anchors"]
    assert min(_square_widths(large)) == 32.0  # torchvision's sizes from 512 px up
    assert head.sizes_for((128, 128))[0] == (16.0, 20.0, 25.0)


def test_a_fixed_scale_keeps_its_sizes_at_every_input_size() -> None:
    head = _head(anchor_scale=1.0)
    assert head.sizes_for((128, 128)) == head.sizes_for((1024, 1024))
    assert head.sizes_for((128, 128))[0] == (8.0, 10.0, 12.0)


def test_explicit_anchor_sizes_set_the_anchors_and_their_count() -> None:
    sizes = [[10.0, 14.0], [20.0, 28.0], [40.0, 56.0], [80.0, 112.0], [160.0, 224.0]]
    head = _head(anchor_sizes=sizes)
    assert head.num_anchors == 2 * 3
    out = head(_features(128), image_size=(128, 128))
    cells = sum(max(1, 128 // s) ** 2 for s in STRIDES)
    assert out["anchors"].shape == (cells * 6, 4)
    assert out["cls_logits"].shape == (1, cells * 6, 3)
    assert {10.0, 14.0, 20.0, 28.0} <= _square_widths(out["anchors"])


@pytest.mark.parametrize("sizes", [[[8.0, 12.0]], [[8.0], [16.0, 24.0], [32.0], [64.0], [128.0]]])
def test_anchor_sizes_need_one_equal_length_list_per_level(sizes) -> None:
    with pytest.raises(ValueError, match="one list per level"):
        _head(anchor_sizes=sizes)


def test_the_towers_have_groupnorm_by_default_with_groups_that_divide_the_channels() -> None:
    def groups(channels: int) -> set[int]:
        head = HEADS.get("anchor_decoupled")(in_channels=[channels] * 3, in_strides=[8, 16, 32], num_classes=2)
        return {m.num_groups for m in head.modules() if isinstance(m, torch.nn.GroupNorm)}

    assert groups(256) == groups(64) == {32}  # torchvision's retinanet_resnet50_fpn_v2
    assert groups(48) == {8} and groups(32) == {16}  # >= 2 channels a group: a 1x1 P7 map still normalises
    plain = _head(norm="none")
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in plain.modules())


@pytest.mark.parametrize(("backbone_channels", "width"), [([128, 256, 512], 64), ([512, 1024, 2048], 256),
                                                          ([16, 32, 64], 16)])
def test_the_fpn_width_follows_the_backbone(backbone_channels, width) -> None:
    from trainer.registry import NECKS

    fpn = NECKS.get("fpn")(in_channels=backbone_channels, in_strides=[8, 16, 32])
    assert fpn.out_channels == [width] * 3  # resnet18: 64 (measured), resnet50: 256 (torchvision)
    given = NECKS.get("fpn")(in_channels=backbone_channels, in_strides=[8, 16, 32], out_channels=40)
    assert given.out_channels == [40] * 3
