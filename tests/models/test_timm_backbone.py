"""`backbone: {name: timm, model_name: ...}`: four timm families through the fc, PAFPN / FPN and seg_head
paths (build, forward/backward, one optimiser step), levels, and `pretrained` files and errors. No network."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest
import torch

from trainer.components import load_builtin_components
from trainer.models.backbones.timm_backbone import TimmNotInstalledError, UnknownTimmModelError
from trainer.models.build import build_model
from trainer.models.weights import WeightsError
from trainer.registry import BACKBONES, LOSSES

timm = pytest.importorskip("timm")
load_builtin_components()

FAMILIES = ["resnet18", "convnext_atto", "efficientnet_b0", "mobilenetv3_small_050"]
# (task, neck, criterion)
PATHS = [
    ("classification", None, "cross_entropy"),
    ("detection", {"name": "pafpn", "depth": 0.33}, "yolox_loss"),
    ("detection", {"name": "fpn"}, "retinanet_loss"),
    ("segmentation", None, "cross_entropy"),
]


def _batch(task: str) -> dict:
    if task == "classification":
        return {"labels": torch.tensor([0, 2])}
    if task == "segmentation":
        return {"labels": torch.randint(0, 3, (2, 64, 64))}
    boxes = torch.tensor([[[4.0, 6.0, 40.0, 30.0]], [[10.0, 10.0, 60.0, 50.0]]])
    return {"gt_boxes": boxes, "gt_labels": torch.tensor([[1], [2]]), "epoch": 0}


def _train_step(model: torch.nn.Module, criterion: str, task: str) -> None:
    loss_module = LOSSES.get(criterion)()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    outputs = model(torch.rand(2, 3, 64, 64))
    names = set(inspect.signature(loss_module.forward).parameters)
    inputs = {k: v for k, v in {**outputs, **_batch(task)}.items() if k in names}
    parts = loss_module(**inputs)
    total = sum(parts.values())
    assert torch.isfinite(total)
    total.backward()
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


@pytest.mark.parametrize("model_name", FAMILIES)
def test_timm_backbone_levels_forward_backward(model_name):
    torch.manual_seed(0)
    backbone = BACKBONES.get("timm")(model_name=model_name)
    assert backbone.out_strides == [8, 16, 32]
    x = torch.randn(2, 3, 64, 96, requires_grad=True)
    features = backbone(x)
    for feature, channels, stride in zip(features, backbone.out_channels, backbone.out_strides):
        assert feature.shape == (2, channels, 64 // stride, 96 // stride)
    sum(f.mean() for f in features).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(("model_name", "path"), list(zip(FAMILIES, PATHS)))
def test_timm_backbone_trains_a_step_on_each_path(model_name, path):
    task, neck, criterion = path
    torch.manual_seed(0)
    architecture = {"backbone": {"name": "timm", "model_name": model_name}, "neck": neck}
    model = build_model(task=task, architecture=architecture, criteria=[criterion], num_classes=3).train()
    _train_step(model, criterion, task)


def test_out_levels_pick_strides_and_errors():
    backbone = BACKBONES.get("timm")(model_name="resnet18", out_levels=(2, 5))
    assert backbone.out_strides == [4, 32] and backbone.out_channels == [64, 512]
    with pytest.raises(ValueError, match=r"no feature map of stride 2 \(level 1\).*among \[2, 3, 4, 5\]"):
        BACKBONES.get("timm")(model_name="convnext_atto", out_levels=(1, 3))
    with pytest.raises(UnknownTimmModelError, match="unknown timm model 'convnext_atom'; did you mean 'convnext_atto'"):
        BACKBONES.get("timm")(model_name="convnext_atom")


@pytest.mark.parametrize("model_name", ["convnext_atto", "efficientnet_b0"])
def test_pretrained_file_of_the_timm_classifier(model_name, tmp_path):
    """A state dict of the whole timm model loads into the feature model as timm's own loader does."""
    torch.manual_seed(0)
    source = timm.create_model(model_name, num_classes=10)
    for key, tensor in source.state_dict().items():
        if tensor.is_floating_point():
            tensor.normal_(std=0.1).abs_() if key.endswith("running_var") else tensor.normal_(std=0.1)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    ours = BACKBONES.get("timm")(model_name=model_name, pretrained=str(path), out_levels=(3, 4, 5)).eval()
    reference = timm.create_model(
        model_name, features_only=True, pretrained=True, pretrained_cfg_overlay={"file": str(path), "num_classes": 10}
    ).eval()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours.body.state_dict()[key], value), key
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), reference(x)[-3:])
    torch.save(ours.state_dict(), tmp_path / "backbone.pth")  # the backbone's own state dict loads too
    again = BACKBONES.get("timm")(model_name=model_name, pretrained=str(tmp_path / "backbone.pth")).eval()
    torch.testing.assert_close(again(x), ours(x))


def test_pretrained_errors(tmp_path, monkeypatch):
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match="r18.pth do not fit.*missing"):
        BACKBONES.get("timm")(model_name="resnet34", pretrained=str(tmp_path / "r18.pth"))
    huggingface_hub = pytest.importorskip("huggingface_hub")
    # offline with an empty cache (the variable HF_HUB_OFFLINE=1 sets this flag when the library is imported)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match="timm could not get pretrained weights for 'mobilenetv3_small_050'"):
        BACKBONES.get("timm")(model_name="mobilenetv3_small_050", pretrained=True)


def test_without_timm_the_recipe_error_says_how_to_install_it(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    recipe = Path(__file__).parents[2] / "recipes" / "classification" / "resnet18_shapes.yaml"
    result = cli("check", recipe, "model.architecture.backbone.name=timm", "model.architecture.backbone.model_name=x")
    assert result.exit_code == 2, result.output
    assert "model.architecture.backbone.name: backbone 'timm' needs the timm package: pip install 'trainer[timm]'" in (
        result.output)
    with pytest.raises(TimmNotInstalledError, match=r"pip install 'trainer\[timm\]'"):
        BACKBONES.get("timm")(model_name="resnet18")


@pytest.mark.slow
def test_trainer_check_runs_a_timm_recipe(cli):
    recipe = Path(__file__).parents[2] / "recipes" / "classification" / "resnet18_shapes.yaml"
    result = cli("check", recipe, "model.architecture.backbone.name=timm",
                 "model.architecture.backbone.model_name=mobilenetv3_small_050", "data.train.num_images=16",
                 "data.val.num_images=8")
    assert result.exit_code == 0, result.output
    assert "recipe OK" in result.output


def test_trainer_list_backbones_says_how_to_list_timm_models(cli):
    result = cli("list", "backbones")
    assert result.exit_code == 0, result.output
    assert "timm.list_models" in result.output.replace("\n", "") and "trainer[timm]" in result.output
