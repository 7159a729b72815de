"""The light FPN-style segmentation head."""

from __future__ import annotations

import pytest
import torch

from trainer.models.heads.segmentation import SegmentationHead
from trainer.registry import HEADS


def features(batch: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, 16, 8, 8), torch.randn(batch, 32, 4, 4), torch.randn(batch, 64, 2, 2)]


def test_registered() -> None:
    assert HEADS.get("seg_head") is SegmentationHead
    assert HEADS.meta("seg_head")["tasks"] == ("segmentation",)


def test_logits_at_image_size_and_backward() -> None:
    head = SegmentationHead(in_channels=[16, 32, 64], in_strides=[8, 16, 32], num_classes=5)
    feats = [f.requires_grad_() for f in features()]
    out = head(feats, image_size=(64, 60))
    assert set(out) == {"logits"} and out["logits"].shape == (2, 5, 64, 60)
    out["logits"].mean().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert all(p.grad is not None for p in head.parameters())


def test_levels_in_any_order_and_single_level() -> None:
    head = SegmentationHead(in_channels=[64, 16, 32], in_strides=[32, 8, 16], num_classes=3, hidden_channels=8)
    f = features()
    head.eval()
    assert head([f[2], f[0], f[1]], image_size=(64, 64))["logits"].shape == (2, 3, 64, 64)
    single = SegmentationHead(in_channels=[16], in_strides=[8], num_classes=2, dropout=0.0)
    assert single([f[0]], image_size=(64, 64))["logits"].shape == (2, 2, 64, 64)


def test_errors() -> None:
    with pytest.raises(ValueError, match="stride"):
        SegmentationHead(in_channels=[16, 32], in_strides=[8], num_classes=2)
    head = SegmentationHead(in_channels=[16, 32], in_strides=[8, 16], num_classes=2)
    with pytest.raises(ValueError, match="feature levels"):
        head(features()[:1], image_size=(64, 64))
