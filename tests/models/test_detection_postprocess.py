"""Decoding (against torchvision BoxCoder / the YOLOX formulas) and class-aware NMS."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import box_convert

from trainer.models.heads import anchor_decoupled, anchor_free_decoupled
from trainer.registry import HEADS
from trainer.tasks.detection_postprocess import detections_from_outputs, postprocess_detections


def decode_retinanet(rel: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    return anchor_decoupled.AnchorDecoupledHead.decode(
        {"box_regression": rel, "anchors": anchors, "cls_logits": torch.zeros(*rel.shape[:-1], 1)}
    )[0]


def decode_yolox(raw: torch.Tensor, grid: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    outputs = {"box_preds": raw, "grid_xy": grid, "strides": strides, "obj_logits": torch.zeros(raw.shape[:-1]),
               "cls_logits": torch.zeros(*raw.shape[:-1], 1)}
    return anchor_free_decoupled.AnchorFreeDecoupledHead.decode(outputs)[0]


def test_yolox_decode_is_the_loss_decode_in_corner_form():
    """One YOLOX decoding: the head's XYXY boxes are the loss's cx cy w h boxes, bit for bit."""
    torch.manual_seed(5)
    raw, grid, strides = torch.randn(2, 30, 4), torch.randint(0, 20, (30, 2)).float(), torch.full((30,), 16.0)
    centre_size = anchor_free_decoupled.decode_boxes(box_preds=raw, grid_xy=grid, strides=strides)
    assert torch.equal(decode_yolox(raw, grid, strides), box_convert(centre_size, "cxcywh", "xyxy"))
    half = torch.exp(raw[..., 2:]) * strides[:, None] / 2  # the former postprocess formula
    assert torch.equal(decode_yolox(raw, grid, strides)[..., :2], centre_size[..., :2] - half)


def _random_boxes(n: int, size: float = 200.0) -> torch.Tensor:
    xy = torch.rand(n, 2) * size
    wh = torch.rand(n, 2) * size / 2 + 2
    return torch.cat((xy, xy + wh), dim=1)


def test_decode_retinanet_matches_torchvision_box_coder():
    torch.manual_seed(0)
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    anchors = _random_boxes(50)
    rel = torch.randn(3, 50, 4)
    rel[0, :5, 2:] = 10.0  # beyond bbox_xform_clip
    expected = torch.stack([coder.decode_single(r, anchors) for r in rel])
    torch.testing.assert_close(decode_retinanet(rel, anchors), expected)


def test_decode_retinanet_round_trips_torchvision_encoding():
    torch.manual_seed(1)
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    anchors, gt = _random_boxes(40), _random_boxes(40)
    torch.testing.assert_close(decode_retinanet(coder.encode_single(gt, anchors), anchors), gt, atol=1e-3, rtol=1e-5)


def test_decode_yolox_round_trips_the_l1_target():
    torch.manual_seed(2)
    gt = _random_boxes(30)
    grid = torch.randint(0, 20, (30, 2)).float()
    strides = torch.tensor([8.0, 16.0, 32.0]).repeat(10)
    s = strides[:, None]
    centre, wh = (gt[:, :2] + gt[:, 2:]) / 2, gt[:, 2:] - gt[:, :2]
    raw = torch.cat((centre / s - grid, torch.log(wh / s)), dim=1)  # YOLOX L1 target (without 1e-8)
    torch.testing.assert_close(decode_yolox(raw[None], grid, strides)[0], gt, atol=1e-3, rtol=1e-5)
    zero = decode_yolox(torch.zeros(1, 1, 4), torch.tensor([[2.0, 3.0]]), torch.tensor([16.0]))
    assert zero.tolist() == [[[24.0, 40.0, 40.0, 56.0]]]


def _postprocess(boxes, scores, **overrides):
    options = {
        "score_threshold": 0.05,
        "nms_iou": 0.5,
        "max_detections": 100,
        "pre_nms_top_k": 1000,
        "image_size": (100, 100),
    }
    options.update(overrides)
    return postprocess_detections(boxes=boxes, scores=scores, **options)


def test_nms_is_class_aware():
    boxes = torch.tensor([[[10.0, 10, 50, 50], [12, 12, 52, 52], [11, 11, 51, 51], [60, 60, 90, 90]]])
    scores = torch.zeros(1, 4, 2)
    scores[0, 0, 0], scores[0, 1, 0] = 0.9, 0.8  # overlapping, same class: the weaker one goes
    scores[0, 2, 1] = 0.7  # overlapping, other class: kept
    scores[0, 3, 0] = 0.6  # apart: kept
    (result,) = _postprocess(boxes, scores)
    assert result["scores"].tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert result["labels"].tolist() == [0, 1, 0] and result["labels"].dtype == torch.int64
    torch.testing.assert_close(result["boxes"], boxes[0, [0, 2, 3]])


def test_threshold_top_k_max_detections_and_clipping():
    torch.manual_seed(3)
    boxes = torch.tensor([[float(x), 0, x + 5, 5] for x in range(0, 200, 10)])[None]  # disjoint, some outside
    scores = torch.linspace(0.01, 0.99, 20 * 3).reshape(1, 20, 3)
    (everything,) = _postprocess(boxes, scores, score_threshold=0.0)
    assert len(everything["scores"]) == 60
    assert everything["boxes"][:, [0, 2]].max() <= 100 and everything["boxes"].min() >= 0
    assert (everything["scores"].diff() <= 0).all()
    (capped,) = _postprocess(boxes, scores, max_detections=7)
    assert len(capped["scores"]) == 7 and capped["scores"][0] == pytest.approx(0.99)
    (top,) = _postprocess(boxes, scores, pre_nms_top_k=5, score_threshold=0.0)
    assert len(top["scores"]) == 5
    (high,) = _postprocess(boxes, scores, score_threshold=0.9)
    assert (high["scores"] > 0.9).all() and len(high["scores"]) == int((scores > 0.9).sum())


def test_empty_results_have_the_right_shapes():
    results = _postprocess(torch.rand(2, 6, 4), torch.zeros(2, 6, 3))
    assert len(results) == 2
    for r in results:
        assert r["boxes"].shape == (0, 4) and r["scores"].shape == (0,) and r["labels"].shape == (0,)


@pytest.mark.parametrize("name", ["anchor_free_decoupled", "anchor_decoupled"])
def test_detections_from_head_outputs(name):
    torch.manual_seed(4)
    head = HEADS.get(name)(in_channels=[16] * 3, in_strides=[8, 16, 32], num_classes=3).eval()
    features = [torch.randn(2, 16, 64 // s, 64 // s) for s in (8, 16, 32)]
    with torch.no_grad():
        outputs = head(features, image_size=(64, 64))
    results = detections_from_outputs(
        outputs, image_size=(64, 64), score_threshold=0.0, nms_iou=0.65, max_detections=20, pre_nms_top_k=100
    )
    assert len(results) == 2
    for r in results:
        assert 0 < len(r["boxes"]) <= 20 and r["boxes"].shape[1] == 4
        assert ((r["labels"] >= 0) & (r["labels"] < 3)).all()
        assert ((r["scores"] > 0) & (r["scores"] <= 1)).all()
    prior = 0.01 * 0.01 if name == "anchor_free_decoupled" else 0.01
    assert results[0]["scores"].max().item() == pytest.approx(prior, rel=0.5)


def test_unknown_outputs_are_a_clear_error():
    with pytest.raises(ValueError, match="cannot tell the detection head"):
        detections_from_outputs(
            {"logits": torch.zeros(1, 3)},
            image_size=(8, 8),
            score_threshold=0.0,
            nms_iou=0.5,
            max_detections=1,
            pre_nms_top_k=1,
        )


def test_yolox_scores_are_obj_times_cls():
    outputs = {
        "box_preds": torch.zeros(1, 1, 4),
        "obj_logits": torch.tensor([[0.0]]),
        "cls_logits": torch.tensor([[[math.log(3.0)]]]),
        "grid_xy": torch.zeros(1, 2),
        "strides": torch.tensor([8.0]),
    }
    (r,) = detections_from_outputs(
        outputs, image_size=(16, 16), score_threshold=0.0, nms_iou=0.5, max_detections=5, pre_nms_top_k=5
    )
    assert r["scores"].tolist() == pytest.approx([0.5 * 0.75])
    assert r["boxes"].tolist() == [[0.0, 0.0, 4.0, 4.0]]
