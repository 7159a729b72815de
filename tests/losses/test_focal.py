"""focal_loss: torchvision.ops.sigmoid_focal_loss with its `mean` / `sum` reductions, plus `sample_sum`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from trainer.losses.focal import FocalLoss, focal_loss
from trainer.registry import LOSSES


def _formula(x, t, alpha, gamma):
    """REFERENCES.md, written out element-wise in float64."""
    x, t = x.double(), t.double()
    p = torch.sigmoid(x)
    ce = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    return loss


def test_registered_with_heads():
    assert LOSSES.get("focal_loss") is FocalLoss
    assert LOSSES.meta("focal_loss")["heads"] == {"classification": ("fc",), "segmentation": ("seg_head",)}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.0), (0.5, 1.5)])
def test_classification_equals_torchvision(alpha, gamma, reduction):
    torch.manual_seed(0)
    logits = torch.randn(8, 6, requires_grad=True)
    labels = torch.randint(0, 6, (8,))
    parts = FocalLoss(alpha=alpha, gamma=gamma, reduction=reduction)(logits=logits, labels=labels)
    assert set(parts) == {"focal"} and parts["focal"].ndim == 0
    (grad,) = torch.autograd.grad(parts["focal"], logits)

    ref_logits = logits.detach().clone().requires_grad_(True)
    one_hot = F.one_hot(labels, 6).float()
    ref = sigmoid_focal_loss(ref_logits, one_hot, alpha=alpha, gamma=gamma, reduction=reduction)
    (ref_grad,) = torch.autograd.grad(ref, ref_logits)
    torch.testing.assert_close(parts["focal"], ref)
    torch.testing.assert_close(grad, ref_grad)
    manual = _formula(logits.detach(), one_hot, alpha, gamma)
    manual = manual.mean() if reduction == "mean" else manual.sum()
    torch.testing.assert_close(parts["focal"].double(), manual, rtol=1e-5, atol=1e-7)


def test_default_reduction_is_mean_as_torchvision():
    torch.manual_seed(4)
    logits, labels = torch.randn(5, 7), torch.randint(0, 7, (5,))
    ref = sigmoid_focal_loss(logits, F.one_hot(labels, 7).float(), reduction="mean")
    torch.testing.assert_close(FocalLoss()(logits=logits, labels=labels)["focal"], ref)


def test_sample_sum_is_the_former_reduction():
    """`sample_sum`: summed over classes, averaged over samples (the reduction before `reduction` existed):
    C times torchvision's `mean`. Value from the former implementation, alpha 0.25, gamma 2."""
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.8, -2.0]])
    labels = torch.tensor([0, 2])
    loss = focal_loss(logits, labels, reduction="sample_sum")
    former = sigmoid_focal_loss(logits, F.one_hot(labels, 3).float(), reduction="none").sum(1).mean()
    torch.testing.assert_close(loss, former)
    torch.testing.assert_close(loss, 3 * focal_loss(logits, labels, reduction="mean"))
    assert loss.item() == pytest.approx(_formula(logits, F.one_hot(labels, 3), 0.25, 2.0).sum(1).mean().item())


@pytest.mark.parametrize("reduction", ["mean", "sum", "sample_sum"])
def test_ignored_samples_excluded(reduction):
    torch.manual_seed(1)
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, -100, 3, 2, -100, 1])
    loss = FocalLoss(reduction=reduction)(logits=logits, labels=labels)["focal"]
    keep = labels != -100
    elements = sigmoid_focal_loss(logits[keep], F.one_hot(labels[keep], 4).float(), reduction="none")
    ref = {"mean": elements.mean(), "sum": elements.sum(), "sample_sum": elements.sum(1).mean()}[reduction]
    torch.testing.assert_close(loss, ref)


@pytest.mark.parametrize("reduction", ["mean", "sum", "sample_sum"])
def test_probability_targets(reduction):
    torch.manual_seed(2)
    logits = torch.randn(8, 5, requires_grad=True)
    targets = torch.softmax(torch.randn(8, 5), dim=1)
    loss = FocalLoss(alpha=0.25, gamma=2.0, reduction=reduction)(logits=logits, labels=targets)["focal"]
    if reduction == "sample_sum":
        ref = sigmoid_focal_loss(logits, targets, reduction="none").sum(1).mean()
    else:
        ref = sigmoid_focal_loss(logits, targets, reduction=reduction)
    torch.testing.assert_close(loss, ref)
    (g,) = torch.autograd.grad(loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)


def test_segmentation_per_pixel_with_ignore_and_upsampling():
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    labels = torch.randint(0, 3, (2, 8, 10))
    labels[:, :3] = 255
    loss = FocalLoss(ignore_index=255)(logits=logits, labels=labels)["focal"]  # mean over valid pixels x classes
    up = F.interpolate(logits, size=(8, 10), mode="bilinear", align_corners=False)
    flat = up.permute(0, 2, 3, 1).reshape(-1, 3)
    y = labels.reshape(-1)
    keep = y != 255
    ref = sigmoid_focal_loss(flat[keep], F.one_hot(y[keep], 3).float(), reduction="mean")
    torch.testing.assert_close(loss, ref)
    (g,) = torch.autograd.grad(loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("reduction", ["mean", "sum", "sample_sum"])
@pytest.mark.parametrize("dense", [False, True])
def test_all_ignored_gives_zero_not_nan(dense, reduction):
    logits = torch.randn((2, 3, 4, 4) if dense else (4, 3), requires_grad=True)
    labels = torch.full((2, 4, 4) if dense else (4,), 255)
    loss = focal_loss(logits, labels, ignore_index=255, reduction=reduction)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_bad_options():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=2.0)
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss(reduction="batch")
