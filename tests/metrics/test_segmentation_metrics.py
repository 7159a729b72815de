"""SegmentationMetrics: hand-computed IoU, ignore index, upsampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.metrics.segmentation import SegmentationMetrics

LABELS = torch.tensor([[[0, 0, 1], [1, 255, 2]]])
PREDS = torch.tensor([[[0, 1, 1], [1, 0, 0]]])
# non-ignored pixels (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,0); the 255 pixel is not counted
# class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0, FN 1 -> 0
# class 3 (when C = 4) is in neither gt nor predictions -> left out of the mean


@pytest.mark.parametrize("num_classes", [3, 4])
def test_hand_computed_iou(num_classes):
    m = SegmentationMetrics(num_classes=num_classes, ignore_index=255)
    m.update(preds=PREDS, labels=LABELS)
    iou = m.per_class_iou()
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    if num_classes == 4:
        assert math.isnan(iou[3])
    result = m.compute()
    assert result["mIoU"] == pytest.approx(1 / 3)
    assert result["pixel_acc"] == pytest.approx(3 / 5)
    assert int(m.confusion_matrix().sum()) == 5


def test_predicted_but_absent_class_counts_as_zero():
    m = SegmentationMetrics(num_classes=3)
    m.update(preds=torch.tensor([[[0, 2]]]), labels=torch.tensor([[[0, 0]]]))
    # class 0: 1/2, class 1: absent -> left out, class 2: predicted, never in gt -> 0
    assert m.compute()["mIoU"] == pytest.approx(0.25)


def test_ignore_index_and_out_of_range_labels():
    m = SegmentationMetrics(num_classes=2, ignore_index=255)
    m.update(preds=torch.tensor([[[1, 1, 1]]]), labels=torch.tensor([[[255, 7, 1]]]))
    assert m.compute() == {"mIoU": 1.0, "pixel_acc": 1.0}
    m.reset()
    m.update(preds=torch.tensor([[[0]]]), labels=torch.tensor([[[255]]]))
    assert m.compute() == {"mIoU": 0.0, "pixel_acc": 0.0}


def test_logits_upsampled_to_label_size():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    labels = torch.randint(0, 4, (2, 20, 24))
    labels[:, :3] = 255
    a = SegmentationMetrics(num_classes=4)
    a.update(logits=logits, labels=labels)
    b = SegmentationMetrics(num_classes=4)
    up = F.interpolate(logits, size=(20, 24), mode="bilinear", align_corners=False)
    b.update(preds=up.argmax(1), labels=labels)
    assert torch.equal(a.confusion_matrix(), b.confusion_matrix())
    # reference: mIoU over classes with union > 0, from scratch
    keep = labels != 255
    p, g = up.argmax(1)[keep], labels[keep]
    ious = []
    for c in range(4):
        inter = ((p == c) & (g == c)).sum().item()
        union = ((p == c) | (g == c)).sum().item()
        if union:
            ious.append(inter / union)
    assert a.compute()["mIoU"] == pytest.approx(sum(ious) / len(ious))
    assert a.compute()["pixel_acc"] == pytest.approx((p == g).float().mean().item())


def test_needs_exactly_one_prediction_input():
    m = SegmentationMetrics(num_classes=2)
    with pytest.raises(ValueError, match="exactly one"):
        m.update(labels=torch.zeros(1, 2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="shape"):
        m.update(preds=torch.zeros(1, 2, 3, dtype=torch.int64), labels=torch.zeros(1, 2, 2, dtype=torch.int64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_update_does_not_sync_on_cuda():
    m = SegmentationMetrics(num_classes=5, device="cuda")
    logits = torch.randn(2, 5, 8, 8, device="cuda")
    labels = torch.randint(0, 5, (2, 32, 32), device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        m.update(logits=logits, labels=labels)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert 0.0 <= m.compute()["mIoU"] <= 1.0
