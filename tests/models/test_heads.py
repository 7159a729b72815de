"""Every registered head: forward/backward; YOLOX and RetinaNet output layout, init and anchors."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead

from trainer.components import load_builtin_components
from trainer.registry import HEADS

load_builtin_components()  # every registered component gets the generic tests below

PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


def _features(channels: list[int], strides: list[int], size: tuple[int, int], batch: int = 2) -> list[torch.Tensor]:
    return [
        torch.randn(batch, c, -(-size[0] // s), -(-size[1] // s), requires_grad=True) for c, s in zip(channels, strides)
    ]


def test_expected_names_registered():
    assert {"fc", "anchor_free_decoupled", "anchor_decoupled"} <= set(HEADS.names())
    assert HEADS.meta("fc")["tasks"] == ("classification",)
    assert HEADS.meta("anchor_free_decoupled")["tasks"] == ("detection",)
    assert HEADS.meta("anchor_decoupled")["tasks"] == ("detection",)


@pytest.mark.parametrize("name", HEADS.names())
def test_forward_backward(name):
    torch.manual_seed(0)
    channels, strides, size = [32, 32, 32], [8, 16, 32], (32, 64)
    head = HEADS.get(name)(in_channels=channels, in_strides=strides, num_classes=3)
    features = _features(channels, strides, size)
    outputs = head(features, image_size=size)
    assert isinstance(outputs, dict) and outputs
    trainable = [v for v in outputs.values() if v.requires_grad]
    assert trainable and all(v.shape[0] == 2 and torch.isfinite(v).all() for v in trainable)
    sum(v.float().mean() for v in trainable).backward()
    assert features[-1].grad is not None
    assert all(p.grad is not None for p in head.parameters())


def test_fc_logits():
    head = HEADS.get("fc")(in_channels=[8, 16], in_strides=[16, 32], num_classes=5, dropout=0.2)
    assert head(_features([8, 16], [16, 32], (64, 64)), image_size=(64, 64))["logits"].shape == (2, 5)


def test_yolox_outputs_layout():
    head = HEADS.get("anchor_free_decoupled")(in_channels=[16, 32, 64], in_strides=[8, 16, 32], num_classes=4)
    assert head.stems[0].conv.out_channels == 16  # hidden = in_channels[0] (YOLOX: int(256 * width))
    size = (100, 70)  # not a multiple of 32: feature maps 13x9, 7x5, 4x3
    features = _features([16, 32, 64], [8, 16, 32], size)
    out = head(features, image_size=size)
    a = 13 * 9 + 7 * 5 + 4 * 3
    assert out["box_preds"].shape == (2, a, 4) and out["obj_logits"].shape == (2, a)
    assert out["cls_logits"].shape == (2, a, 4)
    assert out["grid_xy"].shape == (a, 2) and out["strides"].shape == (a,)
    assert out["grid_xy"].dtype == torch.float32 and out["strides"].dtype == torch.float32
    # row-major per level: anchor y * W + x has cell (x, y); levels in stride order
    assert out["grid_xy"][:10].tolist() == [[float(x), 0.0] for x in range(9)] + [[0.0, 1.0]]
    assert out["grid_xy"][13 * 9 - 1].tolist() == [8.0, 12.0] and out["grid_xy"][13 * 9].tolist() == [0.0, 0.0]
    assert out["strides"].tolist() == [8.0] * 117 + [16.0] * 35 + [32.0] * 12
    # the (y, x) = (2, 3) cell of level 1 (7 x 5) is anchor 117 + 2 * 5 + 3, with the conv output there
    with torch.no_grad():
        x = head.stems[1](features[1])
        reg = head.reg_preds[1](head.reg_convs[1](x))
        cls = head.cls_preds[1](head.cls_convs[1](x))
    torch.testing.assert_close(out["box_preds"][:, 117 + 13], reg[:, :, 2, 3])
    torch.testing.assert_close(out["cls_logits"][:, 117 + 13], cls[:, :, 2, 3])


def test_yolox_bias_init_and_depthwise():
    head = HEADS.get("anchor_free_decoupled")(
        in_channels=[16, 32, 64], in_strides=[8, 16, 32], num_classes=4, hidden_channels=24, depthwise=True
    )
    for conv in [*head.cls_preds, *head.obj_preds]:
        torch.testing.assert_close(conv.bias, torch.full_like(conv.bias, PRIOR_BIAS))
    assert head.cls_preds[0].in_channels == 24 and hasattr(head.cls_convs[0][0], "dconv")


RETINA_STRIDES = [8, 16, 32, 64, 128]


def _torchvision_anchors(features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in [32, 64, 128, 256, 512])
    generator = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    images = ImageList(torch.zeros(1, 3, *size), [size])
    return generator(images, features)[0]


@pytest.mark.parametrize("size", [(96, 160), (200, 136), (512, 512)])
def test_retinanet_anchors_equal_torchvision(size):
    head = HEADS.get("anchor_decoupled")(in_channels=[32] * 5, in_strides=RETINA_STRIDES, num_classes=2,
                                         anchor_scale=4.0)  # torchvision's sizes (the default follows the input)
    features = _features([32] * 5, RETINA_STRIDES, size, batch=1)
    anchors = head(features, image_size=size)["anchors"]
    torch.testing.assert_close(anchors, _torchvision_anchors(features, size))


def test_retinanet_anchors_follow_the_input_size():
    head = HEADS.get("anchor_decoupled")(in_channels=[32] * 5, in_strides=RETINA_STRIDES, num_classes=2,
                                         anchor_scale=4.0)  # torchvision's sizes (the default follows the input)
    first = head(_features([32] * 5, RETINA_STRIDES, (512, 512), batch=1), image_size=(512, 512))["anchors"]
    features = _features([32] * 5, RETINA_STRIDES, (256, 384), batch=1)
    second = head(features, image_size=(256, 384))["anchors"]
    assert first.shape != second.shape
    torch.testing.assert_close(second, _torchvision_anchors(features, (256, 384)))
    # same feature sizes, different (padded) image size: stride = image // feature changes
    third = head(features, image_size=(272, 400))["anchors"]
    assert not torch.equal(second, third)


@pytest.mark.parametrize("norm", ["none", "group"])
def test_retinanet_outputs_match_torchvision_head(norm):
    torch.manual_seed(0)
    ours = HEADS.get("anchor_decoupled")(in_channels=[64] * 3, in_strides=[8, 16, 32], num_classes=3, norm=norm)
    torch.testing.assert_close(ours.cls_logits.bias, torch.full_like(ours.cls_logits.bias, PRIOR_BIAS))
    assert ours.cls_logits.weight.std().item() == pytest.approx(0.01, rel=0.1)
    norm_layer = (lambda c: torch.nn.GroupNorm(32, c)) if norm == "group" else None
    theirs = RetinaNetHead(64, 9, 3, norm_layer=norm_layer)
    ours_params = list(ours.cls_tower.parameters()) + list(ours.cls_logits.parameters())
    ours_params += list(ours.reg_tower.parameters()) + list(ours.bbox_reg.parameters())
    theirs_params = list(theirs.classification_head.parameters()) + list(theirs.regression_head.parameters())
    assert [p.shape for p in ours_params] == [p.shape for p in theirs_params]
    with torch.no_grad():
        for a, b in zip(ours_params, theirs_params):
            b.copy_(a)
    features = _features([64] * 3, [8, 16, 32], (64, 96))
    out = ours(features, image_size=(64, 96))
    ref = theirs(features)
    torch.testing.assert_close(out["cls_logits"], ref["cls_logits"])
    torch.testing.assert_close(out["box_regression"], ref["bbox_regression"])
    assert out["anchors"].shape == (out["cls_logits"].shape[1], 4)


def test_retinanet_requires_equal_channels():
    with pytest.raises(ValueError, match="equal channels"):
        HEADS.get("anchor_decoupled")(in_channels=[16, 32], in_strides=[8, 16], num_classes=2)
