"""ClassificationMetrics: top-1/top-5 and confusion matrix on hand-checked examples."""

from __future__ import annotations

import pytest
import torch

from trainer.metrics.classification import ClassificationMetrics


def test_top1_top5_and_confusion_by_hand():
    m = ClassificationMetrics(num_classes=6, device="cpu")
    # scores rank classes 0 > 1 > 2 > 3 > 4 > 5 for every sample
    logits = torch.tensor([[6.0, 5, 4, 3, 2, 1]]).repeat(4, 1)
    m.update(logits=logits, labels=torch.tensor([0, 1, 4, 5]))  # top1: 1 hit; top5: 3 hits
    m.update(logits=torch.tensor([[0.0, 0, 0, 0, 0, 9]]), labels=torch.tensor([5]))  # top1 hit
    assert m.compute() == {"top1": 2 / 5, "top5": 4 / 5}
    expected = torch.zeros(6, 6, dtype=torch.int64)
    for gt, pred in [(0, 0), (1, 0), (4, 0), (5, 0), (5, 5)]:
        expected[gt, pred] += 1
    assert torch.equal(m.confusion_matrix(), expected)
    assert m.compute() == {"top1": 2 / 5, "top5": 4 / 5}  # compute does not change the state


def test_fewer_than_five_classes_and_probability_labels():
    m = ClassificationMetrics(num_classes=3)
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]])
    mixed = torch.tensor([[0.3, 0.6, 0.1], [0.2, 0.0, 0.8]])  # mixup targets: argmax 1 and 2
    m.update(logits=logits, labels=mixed)
    assert m.compute() == {"top1": 0.5, "top5": 1.0}  # top5 is top-3 here


def test_out_of_range_labels_not_counted_and_reset():
    m = ClassificationMetrics(num_classes=4)
    m.update(logits=torch.eye(4)[:3], labels=torch.tensor([0, -100, 3]))
    assert m.compute() == {"top1": 0.5, "top5": 1.0}
    assert int(m.confusion_matrix().sum()) == 2
    m.reset()
    assert m.compute() == {"top1": 0.0, "top5": 0.0}


def test_accumulates_on_the_given_device():
    m = ClassificationMetrics(num_classes=10, device=torch.device("cpu"))
    torch.manual_seed(0)
    logits, labels = torch.randn(64, 10), torch.randint(0, 10, (64,))
    for chunk in range(4):
        m.update(logits=logits[chunk * 16 : (chunk + 1) * 16], labels=labels[chunk * 16 : (chunk + 1) * 16])
    top5 = logits.topk(5, dim=1).indices
    assert m.compute()["top1"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert m.compute()["top5"] == pytest.approx((top5 == labels[:, None]).any(1).float().mean().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_update_does_not_sync_on_cuda():
    m = ClassificationMetrics(num_classes=10, device="cuda")
    logits, labels = torch.randn(32, 10, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        m.update(logits=logits, labels=labels)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert 0.0 <= m.compute()["top1"] <= 1.0
