"""cross_entropy: same values and gradients as F.cross_entropy, plus the all-ignored guard."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.losses.cross_entropy import CrossEntropyLoss, cross_entropy_loss
from trainer.registry import LOSSES


def _reference_formula(logits, labels, *, eps, weights, ignore_index):
    """REFERENCES.md: ((1-eps) sum w_y (-log p_y) + eps/C sum_n sum_c w_c (-log p_c)) / sum w_y."""
    num_classes = logits.shape[1]
    logp = torch.log_softmax(logits.double(), dim=1).movedim(1, -1).reshape(-1, num_classes)
    y = labels.reshape(-1)
    keep = y != ignore_index
    logp, y = logp[keep], y[keep]
    w = torch.ones(num_classes, dtype=torch.float64) if weights is None else torch.tensor(weights, dtype=torch.float64)
    nll = -(w[y] * logp.gather(1, y[:, None]).squeeze(1)).sum()
    smooth = -(logp * w).sum()
    return ((1 - eps) * nll + eps / num_classes * smooth) / w[y].sum()


def test_registered_with_heads():
    assert LOSSES.get("cross_entropy") is CrossEntropyLoss
    assert LOSSES.meta("cross_entropy")["heads"] == {"classification": ("fc",), "segmentation": ("seg_head",)}


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("weights", [None, [0.5, 2.0, 1.0, 3.0, 0.25]])
@pytest.mark.parametrize("dense", [False, True])
def test_matches_torch_and_formula(eps, weights, dense):
    torch.manual_seed(0)
    ignore = 255 if dense else -100
    shape = (4, 5, 6, 7) if dense else (16, 5)
    logits = torch.randn(shape, requires_grad=True)
    labels = torch.randint(0, 5, (shape[0], *shape[2:]))
    labels.view(-1)[::3] = ignore
    loss_fn = CrossEntropyLoss(label_smoothing=eps, class_weights=weights, ignore_index=ignore)
    parts = loss_fn(logits=logits, labels=labels)
    assert set(parts) == {"ce"} and parts["ce"].ndim == 0
    (grad,) = torch.autograd.grad(parts["ce"], logits)

    ref_logits = logits.detach().clone().requires_grad_(True)
    w = None if weights is None else torch.tensor(weights)
    ref = F.cross_entropy(ref_logits, labels, weight=w, ignore_index=ignore, label_smoothing=eps)
    (ref_grad,) = torch.autograd.grad(ref, ref_logits)
    torch.testing.assert_close(parts["ce"], ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)

    formula = _reference_formula(logits.detach(), labels, eps=eps, weights=weights, ignore_index=ignore)
    torch.testing.assert_close(parts["ce"].double(), formula, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dense", [False, True])
def test_all_ignored_gives_zero_not_nan(dense):
    logits = torch.randn((2, 3, 4, 4) if dense else (4, 3), requires_grad=True)
    labels = torch.full((2, 4, 4) if dense else (4,), 255 if dense else -100)
    loss_fn = CrossEntropyLoss(label_smoothing=0.1, class_weights=[1.0, 2.0, 3.0], ignore_index=255 if dense else -100)
    loss = loss_fn(logits=logits, labels=labels)["ce"]
    assert torch.isnan(F.cross_entropy(logits, labels, ignore_index=255 if dense else -100))  # what we guard
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("weights", [None, [1.0, 0.5, 2.0, 1.5]])
def test_probability_targets(eps, weights):
    torch.manual_seed(1)
    logits = torch.randn(8, 4, requires_grad=True)
    targets = torch.softmax(torch.randn(8, 4), dim=1)  # mixup/cutmix style
    loss = CrossEntropyLoss(label_smoothing=eps, class_weights=weights)(logits=logits, labels=targets)["ce"]
    w = None if weights is None else torch.tensor(weights)
    ref = F.cross_entropy(logits, targets, weight=w, label_smoothing=eps)
    torch.testing.assert_close(loss, ref)
    # REFERENCES.md: t' = t (1 - eps) + eps / C, divided by the sample count
    smoothed = targets * (1 - eps) + eps / 4
    w_all = torch.ones(4) if w is None else w
    manual = -(smoothed * w_all * torch.log_softmax(logits, dim=1)).sum() / 8
    torch.testing.assert_close(loss, manual)
    (g,) = torch.autograd.grad(loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)


def test_segmentation_logits_upsampled_to_labels():
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    labels = torch.randint(0, 3, (2, 16, 20))
    labels[:, :2] = 255
    loss = CrossEntropyLoss(ignore_index=255)(logits=logits, labels=labels)["ce"]
    up = F.interpolate(logits, size=(16, 20), mode="bilinear", align_corners=False)
    torch.testing.assert_close(loss, F.cross_entropy(up, labels, ignore_index=255))
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_low_precision_logits_give_float32_loss():
    logits = torch.randn(4, 3).bfloat16()
    labels = torch.tensor([0, 1, 2, 1])
    loss = CrossEntropyLoss()(logits=logits, labels=labels)["ce"]
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, F.cross_entropy(logits.float(), labels))


def test_bad_options_and_class_count():
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="class_weights"):
        CrossEntropyLoss(class_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="3 entries"):
        CrossEntropyLoss(class_weights=[1.0, 1.0, 1.0])(logits=torch.randn(2, 4), labels=torch.tensor([0, 1]))


def test_pure_function_matches_module():
    logits, labels = torch.randn(5, 3), torch.tensor([0, 2, 1, -100, 2])
    torch.testing.assert_close(
        cross_entropy_loss(logits, labels), CrossEntropyLoss()(logits=logits, labels=labels)["ce"]
    )
