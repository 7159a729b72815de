"""The CPU-only fast paths of the detection losses give what the one-block / dense paths give.

- retinanet: the matcher and the focal loss run in cache-sized blocks on the CPU; forcing tiny
  blocks (many of them) must not change the matches, the loss or its gradient.
- anchor_focal_loss equals torchvision's sigmoid_focal_loss on one-hot targets (values and
  gradients), for several alpha / gamma.
- yolox: on the CPU SimOTA runs on the candidate anchors only; the dense path (as on accelerators)
  must give the same assignment, loss and gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

import trainer.losses.retinanet as retinanet_module
import trainer.losses.yolox as yolox_module
from tests.losses.reference_detection_losses import retinanet_reference_loss
from tests.losses.test_retinanet_loss import make_batch as retinanet_batch
from tests.losses.test_yolox_loss import assign, with_grad
from tests.losses.test_yolox_loss import make_batch as yolox_batch


def _retinanet_with_grads(batch: dict) -> tuple[dict, list]:
    inputs = {**batch, "cls_logits": batch["cls_logits"].clone().requires_grad_(),
              "box_regression": batch["box_regression"].clone().requires_grad_()}
    parts = retinanet_module.retinanet_loss(**inputs)
    sum(parts.values()).backward()
    return {k: v.detach() for k, v in parts.items()}, [inputs["cls_logits"].grad, inputs["box_regression"].grad]


def test_retinanet_many_small_cpu_blocks_change_nothing(monkeypatch):
    batch = retinanet_batch(counts=[4, 0, 1, 7], seed=4)
    valid = batch["gt_labels"] >= 0
    one_block_matches = retinanet_module.match_anchors(anchors=batch["anchors"], gt_boxes=batch["gt_boxes"],
                                                       gt_valid=valid)
    one_block_parts, one_block_grads = _retinanet_with_grads(batch)
    monkeypatch.setattr(retinanet_module, "CPU_BLOCK_ELEMENTS", 64)  # one image / a few anchor rows per block
    monkeypatch.setattr(retinanet_module, "CPU_BLOCK_THREADED_FACTOR", 1)
    assert len(retinanet_module._blocks(4, 7 * batch["anchors"].shape[0], torch.device("cpu"))) == 4
    matches = retinanet_module.match_anchors(anchors=batch["anchors"], gt_boxes=batch["gt_boxes"], gt_valid=valid)
    assert torch.equal(matches, one_block_matches)
    parts, grads = _retinanet_with_grads(batch)
    for key in parts:
        torch.testing.assert_close(parts[key], one_block_parts[key], rtol=1e-6, atol=1e-7)
    for mine, theirs in zip(grads, one_block_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-8)
    reference = retinanet_reference_loss(**batch)
    for key in parts:
        torch.testing.assert_close(parts[key], reference[key], rtol=1e-5, atol=1e-6)


def test_blocks_are_one_on_accelerators():
    assert retinanet_module._blocks(16, 10**6, torch.device("cuda")) == [slice(0, 16)]


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 0.0), (0.5, 1.5), (0.25, 0.0)])
def test_anchor_focal_loss_equals_torchvision(alpha, gamma):
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 50, 7, generator=generator) * 4).requires_grad_()
    target = torch.randint(-1, 7, (3, 50), generator=generator)
    weights = torch.rand(3, 50, generator=generator)  # a non-uniform upstream gradient
    ours = retinanet_module.anchor_focal_loss(logits, target, alpha=alpha, gamma=gamma)
    (ours * weights).sum().backward()
    ours_grad, logits.grad = logits.grad, None
    one_hot = F.one_hot(target.clamp(min=0), 7).float() * (target >= 0)[..., None]
    theirs = sigmoid_focal_loss(logits, one_hot, alpha=alpha, gamma=gamma, reduction="none").sum(-1)
    (theirs * weights).sum().backward()
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_grad, logits.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_yolox_candidate_compaction_equals_dense(monkeypatch, seed):
    batch = yolox_batch(counts=[[0, 2, 5], [7, 1, 3], [4, 4, 0]][seed], seed=seed + 20)
    compact = assign(batch)
    ours_in = with_grad(batch)
    ours = yolox_module.yolox_loss(**ours_in, use_l1=True)
    sum(ours.values()).backward()
    assert yolox_module._candidate_index(torch.ones(2, 5, dtype=torch.bool)) is None  # nothing to drop
    monkeypatch.setattr(yolox_module, "_candidate_index", lambda candidate: None)  # the accelerator path
    dense = assign(batch)
    fg = dense[0]
    assert torch.equal(compact[0], fg) and fg.any()
    for mine, theirs in zip(compact[1:], dense[1:]):  # matched gt and IoU are meaningful on foreground only
        assert torch.equal(mine[fg], theirs[fg])
    dense_in = with_grad(batch)
    reference = yolox_module.yolox_loss(**dense_in, use_l1=True)
    sum(reference.values()).backward()
    for part in ours:
        torch.testing.assert_close(ours[part], reference[part], rtol=1e-6, atol=1e-7)
    for key in ("box_preds", "obj_logits", "cls_logits"):
        torch.testing.assert_close(ours_in[key].grad, dense_in[key].grad, rtol=1e-6, atol=1e-8)
