"""PIDNet: sizes, output contract, gradients, pretrained loading."""

from __future__ import annotations

import logging

import pytest
import torch

from trainer.models.full.pidnet import PIDNet
from trainer.models.weights import WeightsError, load_weights
from trainer.registry import FULL_MODELS


def n_params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def test_registered() -> None:
    assert FULL_MODELS.get("pidnet") is PIDNet
    assert FULL_MODELS.meta("pidnet")["tasks"] == ("segmentation",)


def test_small_train_and_eval_outputs_and_backward() -> None:
    torch.manual_seed(0)
    model = PIDNet(num_classes=5, size="s")
    images = torch.randn(2, 3, 64, 64)
    out = model(images)
    assert set(out) == {"logits_p", "logits", "boundary_logits"}
    assert out["logits_p"].shape == (2, 5, 8, 8)
    assert out["logits"].shape == (2, 5, 8, 8)
    assert out["boundary_logits"].shape == (2, 1, 8, 8)
    sum(o.float().mean() for o in out.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient in training: {missing[:5]}"
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert set(out) == {"logits"} and out["logits"].shape == (2, 5, 64, 64)


def test_input_size_not_a_multiple_of_eight() -> None:
    model = PIDNet(num_classes=3)
    out = model(torch.randn(2, 3, 70, 50))
    assert out["logits"].shape == (2, 3, 9, 7) and out["boundary_logits"].shape == (2, 1, 9, 7)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 70, 50))["logits"].shape == (1, 3, 70, 50)


def test_without_augment_heads() -> None:
    model = PIDNet(num_classes=4, augment=False)
    assert not hasattr(model, "seghead_p") and not hasattr(model, "seghead_d")
    out = model(torch.randn(2, 3, 32, 32))
    assert set(out) == {"logits"} and out["logits"].shape == (2, 4, 32, 32)


@pytest.mark.parametrize(
    ("size", "paper_millions"),
    [
        ("s", 7.6),
        # The paper's Table 6 says 34.4M for PIDNet-M, but the official code (same m, n, planes,
        # ppm and head widths as here) builds 28.5M; official M weights load into this layout.
        ("m", 28.5),
        ("l", 36.9),
    ],
)
def test_parameter_count_matches_paper(size: str, paper_millions: float) -> None:
    model = PIDNet(num_classes=19, size=size, augment=False)
    assert n_params(model) == pytest.approx(paper_millions, rel=0.15)


def test_medium_and_large_build_with_aux_heads() -> None:
    for size, expected in (("m", 28.8), ("l", 37.3)):
        assert n_params(PIDNet(num_classes=19, size=size)) == pytest.approx(expected, rel=0.02)


def test_unknown_size() -> None:
    with pytest.raises(ValueError, match="size"):
        PIDNet(num_classes=2, size="xl")


def test_pretrained_round_trip_and_formats(tmp_path) -> None:
    source = PIDNet(num_classes=3)
    path = tmp_path / "full.pt"
    torch.save(source.state_dict(), path)
    target = PIDNet(num_classes=3, pretrained=str(path))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name
    # Official Cityscapes checkpoint layout: {"state_dict": {"model.<key>": ...}} plus loss buffers.
    official = {
        "state_dict": {**{f"model.{k}": v for k, v in source.state_dict().items()}, "sem_loss.w": torch.ones(3)}
    }
    torch.save(official, tmp_path / "official.pth")
    report = load_weights(PIDNet(num_classes=3), tmp_path / "official.pth", strict=False)
    assert len(report.loaded) == len([k for k in source.state_dict() if not k.endswith("num_batches_tracked")])
    assert not report.reinitialised
    assert report.left_out == ("sem_loss.w",) and "PIDNet" in report.format


def test_pretrained_backbone_subset_and_other_class_count(tmp_path, caplog) -> None:
    source = PIDNet(num_classes=19)
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith(("conv1.", "layer1.", "layer2."))}
    torch.save({"state_dict": backbone}, tmp_path / "imagenet.pth")
    with caplog.at_level(logging.INFO):
        PIDNet(num_classes=19, pretrained=str(tmp_path / "imagenet.pth"))
    weights = [k for k in source.state_dict() if not k.endswith("num_batches_tracked")]
    loaded = [k for k in backbone if not k.endswith("num_batches_tracked")]
    assert f"loaded {len(loaded)} of {len(weights)} tensors; re-initialised {len(weights) - len(loaded)}" in caplog.text
    torch.save(source.state_dict(), tmp_path / "city.pt")
    report = load_weights(PIDNet(num_classes=7), tmp_path / "city.pt", strict=False)
    # final_layer and seghead_p classifiers (weight, bias) keep their initial values
    assert sorted(report.reinitialised) == [
        "final_layer.conv2.bias", "final_layer.conv2.weight", "seghead_p.conv2.bias", "seghead_p.conv2.weight"
    ]
    assert len(report.loaded) == len(weights) - 4


def test_pretrained_errors(tmp_path) -> None:
    with pytest.raises(WeightsError, match="no such file"):
        PIDNet(num_classes=2, pretrained=str(tmp_path / "missing.pt"))
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="no tensor fits PIDNet.*closest expected"):
        PIDNet(num_classes=2, pretrained=str(tmp_path / "other.pt"))
