"""Every registered backbone: forward/backward shapes; `pretrained` loading and its errors."""

from __future__ import annotations

import pytest
import torch
import torchvision

from trainer.components import load_builtin_components
from trainer.models.weights import WeightsError
from trainer.registry import BACKBONES

load_builtin_components()  # every registered component gets the generic tests below

TORCHVISION = ["resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]
CSP = [f"cspdarknet_{size}" for size in ("nano", "tiny", "s", "m", "l", "x")]


def test_expected_names_registered():
    assert set(TORCHVISION + CSP) <= set(BACKBONES.names())


# required options of entries that have some (timm: tests/models/test_timm_backbone.py covers its families)
EXAMPLE_OPTIONS = {"timm": {"model_name": "resnet18"}}


@pytest.mark.parametrize("name", BACKBONES.names())
def test_forward_backward_shapes(name):
    if name == "timm":
        pytest.importorskip("timm")
    torch.manual_seed(0)
    backbone = BACKBONES.get(name)(**EXAMPLE_OPTIONS.get(name, {}))
    x = torch.randn(2, 3, 32, 64, requires_grad=True)
    features = backbone(x)
    assert isinstance(features, list)
    assert len(features) == len(backbone.out_channels) == len(backbone.out_strides)
    assert backbone.out_strides == sorted(backbone.out_strides)
    if name in TORCHVISION + CSP:
        assert backbone.out_strides == [8, 16, 32]
    for feature, channels, stride in zip(features, backbone.out_channels, backbone.out_strides):
        assert feature.shape == (2, channels, 32 // stride, 64 // stride)
    sum(f.float().mean() for f in features).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)


def test_out_levels_and_odd_input():
    backbone = BACKBONES.get("resnet18")(out_levels=(2, 3, 4, 5))
    assert backbone.out_strides == [4, 8, 16, 32] and backbone.out_channels == [64, 128, 256, 512]
    features = backbone(torch.randn(1, 3, 100, 70))
    assert [tuple(f.shape[2:]) for f in features] == [(25, 18), (13, 9), (7, 5), (4, 3)]
    with pytest.raises(ValueError, match="out_levels"):
        BACKBONES.get("resnet18")(out_levels=(5, 3))


def test_frozen_stages():
    backbone = BACKBONES.get("resnet18")(frozen_stages=1)
    frozen = [p for stage in backbone.stages[:2] for p in stage.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for stage in backbone.stages[2:] for p in stage.parameters())
    backbone.train()
    assert not backbone.stages[0].training and backbone.stages[2].training


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_pretrained_loads_torchvision_classifier_state_dict(name, tmp_path):
    torch.manual_seed(1)
    classifier = getattr(torchvision.models, name)(weights=None).eval()
    path = tmp_path / "weights.pth"
    torch.save(classifier.state_dict(), path)
    backbone = BACKBONES.get(name)(pretrained=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    # the stride-32 output of the backbone equals the classifier's last feature map
    if name.startswith("resnet"):
        c = classifier
        expected = c.layer4(c.layer3(c.layer2(c.layer1(c.maxpool(c.relu(c.bn1(c.conv1(x))))))))
    else:
        expected = classifier.features(x)
    torch.testing.assert_close(backbone(x)[-1], expected)


def test_pretrained_loads_own_and_prefixed_state_dicts(tmp_path):
    source = BACKBONES.get("cspdarknet_nano")()
    for p in source.parameters():
        torch.nn.init.normal_(p)
    torch.save(source.state_dict(), tmp_path / "own.pth")
    torch.save({"model": {f"backbone.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "ckpt.pth")
    for file in ("own.pth", "ckpt.pth"):
        loaded = BACKBONES.get("cspdarknet_nano")(pretrained=str(tmp_path / file))
        for key, value in source.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), (file, key)
    # official YOLOX layout (backbone.backbone.*): BGR input channels of the stem, reordered to RGB
    torch.save({"model": {f"backbone.backbone.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "yolox.pth")
    loaded = BACKBONES.get("cspdarknet_nano")(pretrained=str(tmp_path / "yolox.pth")).eval()
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), source.eval()(x.flip(1)), rtol=1e-3, atol=1e-3)  # large activations


def test_pretrained_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="nope.pth: no such file"):
        BACKBONES.get("resnet18")(pretrained=str(tmp_path / "nope.pth"))


def test_pretrained_wrong_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit.*unexpected.*layer1.2"):
        BACKBONES.get("resnet18")(pretrained=str(path))
    torch.save({"foo": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="no tensor fits CSPDarknet.*'foo' .closest expected"):
        BACKBONES.get("cspdarknet_s")(pretrained=str(path))
