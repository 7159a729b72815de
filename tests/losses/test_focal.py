"""focal_loss: torchvision.ops.sigmoid_focal_loss summed over classes, averaged over samples."""

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


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.0), (0.5, 1.5)])
def test_classification_matches_torchvision(alpha, gamma):
    torch.manual_seed(0)
    logits = torch.randn(8, 6, requires_grad=True)
    labels = torch.randint(0, 6, (8,))
    parts = FocalLoss(alpha=alpha, gamma=gamma)(logits=logits, labels=labels)
    assert set(parts) == {"focal"} and parts["focal"].ndim == 0
    (grad,) = torch.autograd.grad(parts["focal"], logits)

    ref_logits = logits.detach().clone().requires_grad_(True)
    one_hot = F.one_hot(labels, 6).float()
    ref = sigmoid_focal_loss(ref_logits, one_hot, alpha=alpha, gamma=gamma, reduction="none").sum(1).mean()
    (ref_grad,) = torch.autograd.grad(ref, ref_logits)
    torch.testing.assert_close(parts["focal"], ref)
    torch.testing.assert_close(grad, ref_grad)
    manual = _formula(logits.detach(), one_hot, alpha, gamma).sum(1).mean()
    torch.testing.assert_close(parts["focal"].double(), manual, rtol=1e-5, atol=1e-7)
    # the documented relation to NetsPresso's / torchvision's "mean" reduction
    mean_all = sigmoid_focal_loss(logits.detach(), one_hot, alpha=alpha, gamma=gamma, reduction="mean")
    torch.testing.assert_close(parts["focal"].detach() / 6, mean_all)


def test_ignored_samples_excluded():
    torch.manual_seed(1)
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, -100, 3, 2, -100, 1])
    loss = FocalLoss()(logits=logits, labels=labels)["focal"]
    keep = labels != -100
    ref = sigmoid_focal_loss(logits[keep], F.one_hot(labels[keep], 4).float(), reduction="none").sum(1).mean()
    torch.testing.assert_close(loss, ref)


def test_probability_targets():
    torch.manual_seed(2)
    logits = torch.randn(8, 5, requires_grad=True)
    targets = torch.softmax(torch.randn(8, 5), dim=1)
    loss = FocalLoss(alpha=0.25, gamma=2.0)(logits=logits, labels=targets)["focal"]
    ref = sigmoid_focal_loss(logits, targets, reduction="none").sum(1).mean()
    torch.testing.assert_close(loss, ref)
    (g,) = torch.autograd.grad(loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)


def test_segmentation_per_pixel_with_ignore_and_upsampling():
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    labels = torch.randint(0, 3, (2, 8, 10))
    labels[:, :3] = 255
    loss = FocalLoss(ignore_index=255)(logits=logits, labels=labels)["focal"]
    up = F.interpolate(logits, size=(8, 10), mode="bilinear", align_corners=False)
    flat = up.permute(0, 2, 3, 1).reshape(-1, 3)
    y = labels.reshape(-1)
    keep = y != 255
    ref = sigmoid_focal_loss(flat[keep], F.one_hot(y[keep], 3).float(), reduction="none").sum(1).mean()
    torch.testing.assert_close(loss, ref)
    (g,) = torch.autograd.grad(loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("dense", [False, True])
def test_all_ignored_gives_zero_not_nan(dense):
    logits = torch.randn((2, 3, 4, 4) if dense else (4, 3), requires_grad=True)
    labels = torch.full((2, 4, 4) if dense else (4,), 255)
    loss = focal_loss(logits, labels, ignore_index=255)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_bad_options():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=2.0)
