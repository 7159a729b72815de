"""yolox_loss: hand-computed cases, equality with the per-image official formulation, options, AMP, DDP."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_convert

import trainer.losses.yolox as yolox_module
from tests.losses.reference_detection_losses import yolox_reference_loss
from trainer.losses.yolox import YOLOXLoss, decode_yolox_boxes, simota_assign, yolox_loss
from trainer.registry import LOSSES

PARTS = {"iou", "obj", "cls", "l1"}


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def bce(logit: float, target: float) -> float:
    return softplus(logit) - target * logit


def make_grid(*, height: int, width: int, level_strides=(8, 16, 32)):
    """Anchor points as the head gives them: row-major per level, levels in stride order."""
    grids, strides = [], []
    for stride in level_strides:
        ys, xs = torch.meshgrid(torch.arange(height // stride), torch.arange(width // stride), indexing="ij")
        grids.append(torch.stack([xs, ys], dim=-1).reshape(-1, 2).float())
        strides.append(torch.full((grids[-1].shape[0],), float(stride)))
    return torch.cat(grids), torch.cat(strides)


def make_batch(*, counts: list[int], seed: int, num_classes: int = 4, height: int = 64, width: int = 96):
    generator = torch.Generator().manual_seed(seed)
    grid_xy, strides = make_grid(height=height, width=width)
    num_anchors, num_gt = grid_xy.shape[0], max(counts)
    gt_boxes = torch.zeros(len(counts), num_gt, 4)
    gt_labels = torch.full((len(counts), num_gt), -1, dtype=torch.int64)
    for b, n in enumerate(counts):
        size = torch.rand(n, 2, generator=generator) * 40 + 6
        corner = torch.rand(n, 2, generator=generator) * (torch.tensor([width, height]) - size)
        gt_boxes[b, :n] = torch.cat([corner, corner + size], dim=1)
        gt_labels[b, :n] = torch.randint(0, num_classes, (n,), generator=generator)
    offsets = torch.rand(len(counts), num_anchors, 2, generator=generator)
    sizes = torch.log(24.0 / strides)[None, :, None] + 0.6 * torch.randn(
        len(counts), num_anchors, 2, generator=generator
    )
    return {
        "box_preds": torch.cat([offsets, sizes], dim=-1),
        "obj_logits": torch.randn(len(counts), num_anchors, generator=generator) - 1.0,
        "cls_logits": torch.randn(len(counts), num_anchors, num_classes, generator=generator) - 1.0,
        "grid_xy": grid_xy,
        "strides": strides,
        "gt_boxes": gt_boxes,
        "gt_labels": gt_labels,
    }


def with_grad(batch: dict) -> dict:
    batch = dict(batch)
    for key in ("box_preds", "obj_logits", "cls_logits"):
        batch[key] = batch[key].clone().requires_grad_()
    return batch


def assign(batch: dict, **options):
    """simota_assign on a loss-input batch (decoded predictions, cx cy w h gts)."""
    return simota_assign(
        pred_boxes=decode_yolox_boxes(box_preds=batch["box_preds"], grid_xy=batch["grid_xy"], strides=batch["strides"]),
        obj_logits=batch["obj_logits"],
        cls_logits=batch["cls_logits"],
        grid_xy=batch["grid_xy"],
        strides=batch["strides"],
        gt_boxes=box_convert(batch["gt_boxes"], in_fmt="xyxy", out_fmt="cxcywh"),
        gt_labels=batch["gt_labels"],
        **options,
    )


def test_one_box_one_candidate_by_hand():
    batch = {
        "box_preds": torch.tensor([[[0.25, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]),
        "obj_logits": torch.tensor([[0.3, -0.7]]),
        "cls_logits": torch.tensor([[[-1.0, 0.4], [0.2, -0.3]]]),
        "grid_xy": torch.tensor([[0.0, 0.0], [5.0, 5.0]]),  # anchor points (4, 4) and (44, 44)
        "strides": torch.tensor([8.0, 8.0]),
        "gt_boxes": torch.tensor([[[0.0, 0.0, 8.0, 8.0]]]),
        "gt_labels": torch.tensor([[1]]),
    }
    parts = YOLOXLoss(l1_activate_epoch=0)(**batch, epoch=0)
    iou = 0.6  # prediction (-2, 0, 6, 8) against gt (0, 0, 8, 8): 48 / 80; k = max(1, int(0.6)) = 1
    assert set(parts) == PARTS
    assert parts["iou"].item() == pytest.approx(5.0 * (1.0 - iou**2), rel=1e-6)
    assert parts["obj"].item() == pytest.approx(bce(0.3, 1.0) + bce(-0.7, 0.0), rel=1e-6)
    assert parts["cls"].item() == pytest.approx(bce(-1.0, 0.0) + bce(0.4, iou), rel=1e-6)
    assert parts["l1"].item() == pytest.approx(0.25 + 2 * abs(math.log(1 + 1e-8)), rel=1e-5)


@pytest.mark.parametrize("cls_logits, winner", [([0.0, 0.0], 0), ([-12.0, 6.0], 1)])
def test_two_boxes_competing_for_one_anchor_go_to_lowest_cost(cls_logits, winner):
    batch = {
        "box_preds": torch.tensor([[[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]),  # (12, 12, 8, 8) = gt 0
        "obj_logits": torch.tensor([[0.0, -1.0]]),
        "cls_logits": torch.tensor([[cls_logits, [0.0, 0.0]]]),
        "grid_xy": torch.tensor([[1.0, 1.0], [6.0, 6.0]]),  # anchor points (12, 12) and (52, 52)
        "strides": torch.tensor([8.0, 8.0]),
        "gt_boxes": torch.tensor([[[8.0, 8.0, 16.0, 16.0], [12.0, 8.0, 20.0, 16.0]]]),
        "gt_labels": torch.tensor([[0, 1]]),
    }
    parts = YOLOXLoss()(**batch, epoch=0)
    iou = [1.0, 1.0 / 3.0][winner]  # both gts take anchor 0 (k = 1); the cheaper gt keeps it
    assert parts["iou"].item() == pytest.approx(5.0 * (1.0 - iou**2), rel=1e-5, abs=1e-6)
    assert parts["obj"].item() == pytest.approx(bce(0.0, 1.0) + bce(-1.0, 0.0), rel=1e-6)
    targets = [iou if c == winner else 0.0 for c in range(2)]
    assert parts["cls"].item() == pytest.approx(sum(bce(x, t) for x, t in zip(cls_logits, targets)), rel=1e-5)
    assert parts["l1"].item() == 0.0
    reference = yolox_reference_loss(**batch, use_l1=False)
    for part in PARTS:
        torch.testing.assert_close(parts[part], reference[part])


def test_dynamic_k_counts_the_top_ious():
    grid_xy, strides = make_grid(height=24, width=24, level_strides=(8,))  # 3 x 3 points, all candidates
    box_preds = torch.zeros(1, 9, 4)
    box_preds[0, :, 2:] = -5.0  # tiny boxes: IoU ~ 0
    exact = torch.tensor([0, 4, 8])
    box_preds[0, exact, :2] = 1.5 - grid_xy[exact]  # these three predict the gt box exactly
    box_preds[0, exact, 2:] = math.log(2.0)
    batch = {
        "box_preds": box_preds,
        "obj_logits": torch.zeros(1, 9),
        "cls_logits": torch.zeros(1, 9, 3),
        "grid_xy": grid_xy,
        "strides": strides,
        "gt_boxes": torch.tensor([[[4.0, 4.0, 20.0, 20.0]]]),
        "gt_labels": torch.tensor([[2]]),
    }
    fg, matched_gt, matched_iou = assign(batch)
    assert torch.equal(torch.nonzero(fg[0]).flatten(), exact)  # k = int(3 + tiny) = 3
    assert torch.equal(matched_gt[0, exact], torch.zeros(3, dtype=torch.int64))
    torch.testing.assert_close(matched_iou[0, exact], torch.ones(3))


@pytest.mark.parametrize("num_gt", [0, 3])
def test_no_boxes_gives_only_obj_negatives_divided_by_one(num_gt):
    batch = make_batch(counts=[1, 1], seed=0)
    batch["gt_boxes"] = torch.zeros(2, num_gt, 4)
    batch["gt_labels"] = torch.full((2, num_gt), -1, dtype=torch.int64)
    parts = YOLOXLoss(l1_activate_epoch=0)(**batch, epoch=3)
    expected = torch.nn.functional.softplus(batch["obj_logits"]).sum()
    torch.testing.assert_close(parts["obj"], expected)
    assert parts["iou"].item() == parts["cls"].item() == parts["l1"].item() == 0.0


def test_gt_without_any_candidate_anchor_gets_no_foreground():
    batch = make_batch(counts=[2], seed=3)
    batch["gt_boxes"][0, :] = torch.tensor([900.0, 900.0, 950.0, 950.0])  # far outside the 64 x 96 grid
    parts = yolox_loss(**batch, use_l1=True)
    torch.testing.assert_close(parts["obj"], torch.nn.functional.softplus(batch["obj_logits"]).sum())
    assert parts["iou"].item() == parts["cls"].item() == parts["l1"].item() == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_equals_per_image_reference_on_random_batches(seed):
    batch = make_batch(counts=[0, 1, 3, 7][seed:] + [0, 1, 3, 7][:seed], seed=seed)
    ours_in, ref_in = with_grad(batch), with_grad(batch)
    ours = yolox_loss(**ours_in, use_l1=True)
    ref = yolox_reference_loss(**ref_in, use_l1=True)
    for part in PARTS:
        torch.testing.assert_close(ours[part], ref[part], rtol=1e-5, atol=1e-6)
    assert ours["cls"].item() > 0  # there was foreground
    sum(ours.values()).backward()
    sum(ref.values()).backward()
    for key in ("box_preds", "obj_logits", "cls_logits"):
        torch.testing.assert_close(ours_in[key].grad, ref_in[key].grad, rtol=1e-5, atol=1e-7)


def test_crowded_boxes_with_conflicts_and_interleaved_padding_equal_reference():
    batch = make_batch(counts=[12, 9], seed=11)
    batch["gt_labels"][0, 3] = -1  # a crowd box removed in the middle of the list
    options = {"topk_candidates": 5, "center_radius": 2.5}
    fg, _, _ = assign(batch, **options)
    assert fg.sum() > 10
    ours = yolox_loss(**batch, use_l1=True, **options)
    ref = yolox_reference_loss(**batch, use_l1=True, **options)
    for part in PARTS:
        torch.testing.assert_close(ours[part], ref[part], rtol=1e-5, atol=1e-6)


def test_l1_part_turns_on_at_its_epoch():
    batch = make_batch(counts=[2, 4], seed=5)
    reference = yolox_reference_loss(**batch, use_l1=True)
    loss = YOLOXLoss(l1_activate_epoch=2)
    before, at, after = (loss(**batch, epoch=epoch) for epoch in (1, 2, 7))
    assert set(before) == set(at) == PARTS
    assert before["l1"].item() == 0.0
    torch.testing.assert_close(at["l1"], reference["l1"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after["l1"], at["l1"])
    for part in ("iou", "obj", "cls"):
        torch.testing.assert_close(before[part], at[part])
    assert YOLOXLoss(l1_activate_epoch=None)(**batch, epoch=1000)["l1"].item() == 0.0


def test_gradients_flow_from_every_part_to_its_inputs():
    batch = with_grad(make_batch(counts=[3, 1], seed=2))
    parts = YOLOXLoss(l1_activate_epoch=0)(**batch, epoch=0)
    inputs = [batch["box_preds"], batch["obj_logits"], batch["cls_logits"]]
    reaches = {
        "iou": [True, False, False],
        "obj": [False, True, False],
        "cls": [False, False, True],
        "l1": [True, False, False],
    }
    for part, expected in reaches.items():
        grads = torch.autograd.grad(parts[part], inputs, retain_graph=True, allow_unused=True)
        for grad, flows in zip(grads, expected):
            assert (grad is not None and bool(grad.abs().sum() > 0)) == flows, part
    sum(parts.values()).backward()
    for tensor in inputs:
        assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_bf16_autocast_has_no_nan_and_computes_in_fp32():
    batch = make_batch(counts=[0, 5, 2], seed=4)
    low = with_grad({**batch, **{k: batch[k].bfloat16() for k in ("box_preds", "obj_logits", "cls_logits")}})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        parts = YOLOXLoss(l1_activate_epoch=0)(**low, epoch=0)
    sum(parts.values()).backward()
    for key in ("box_preds", "obj_logits", "cls_logits"):
        assert torch.isfinite(low[key].grad.float()).all()
    rounded = {**batch, **{k: low[k].detach().float() for k in ("box_preds", "obj_logits", "cls_logits")}}
    full = yolox_loss(**rounded, use_l1=True)
    for part in PARTS:
        assert parts[part].dtype == torch.float32 and torch.isfinite(parts[part])
        torch.testing.assert_close(parts[part], full[part])


def test_registration_and_option_checks():
    assert LOSSES.get("yolox_loss") is YOLOXLoss
    assert LOSSES.meta("yolox_loss")["heads"] == {"detection": ("anchor_free_decoupled",)}
    with pytest.raises(ValueError, match="topk_candidates"):
        YOLOXLoss(topk_candidates=0)
    with pytest.raises(ValueError, match="center_radius"):
        YOLOXLoss(center_radius=0.0)
    parts = YOLOXLoss(box_weight=1.0)(**make_batch(counts=[2], seed=1), epoch=0)
    default = YOLOXLoss()(**make_batch(counts=[2], seed=1), epoch=0)
    torch.testing.assert_close(default["iou"], 5.0 * parts["iou"])


class FakeDist:
    """Stands in for torch.distributed on a 2-rank group: all_reduce adds the other rank's count."""

    ReduceOp = torch.distributed.ReduceOp

    def __init__(self, other_rank_count: float) -> None:
        self.other_rank_count = other_rank_count
        self.local_counts: list[float] = []

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def get_world_size(self) -> int:
        return 2

    def all_reduce(self, tensor, op=None) -> None:
        assert op == self.ReduceOp.SUM
        self.local_counts.append(float(tensor))
        tensor += self.other_rank_count


def test_ddp_normaliser_gives_the_single_process_gradient(monkeypatch):
    """Two ranks with half the batch each: the DDP-averaged gradient equals the whole-batch gradient."""
    full = make_batch(counts=[1, 6, 0, 3], seed=9)
    halves = [
        {k: v[rank::2] if k.startswith(("box", "obj", "cls", "gt")) else v for k, v in full.items()}
        for rank in range(2)
    ]
    local_counts = []
    for half in halves:
        fake = FakeDist(0.0)
        monkeypatch.setattr(yolox_module, "dist", fake)
        yolox_loss(**half, use_l1=True)
        local_counts += fake.local_counts
    assert min(local_counts) > 0
    rank_losses, rank_grads = [], []
    for rank, half in enumerate(halves):
        monkeypatch.setattr(yolox_module, "dist", FakeDist(local_counts[1 - rank]))
        half = with_grad(half)
        loss = sum(yolox_loss(**half, use_l1=True).values())
        loss.backward()
        rank_losses.append(loss.detach())
        rank_grads.append([half[k].grad for k in ("box_preds", "obj_logits", "cls_logits")])
    monkeypatch.undo()
    full = with_grad(full)
    loss = sum(yolox_loss(**full, use_l1=True).values())
    loss.backward()
    torch.testing.assert_close((rank_losses[0] + rank_losses[1]) / 2, loss.detach())
    for i, key in enumerate(("box_preds", "obj_logits", "cls_logits")):
        for rank in range(2):  # DDP averages the ranks' gradients
            torch.testing.assert_close(rank_grads[rank][i] / 2, full[key].grad[rank::2])


def test_gt_with_few_centre_anchors_takes_other_candidates_at_1e6_cost():
    """k may exceed a gt's own centre anchors: it then takes other gts' candidates (cost + 1e6)."""
    grid_xy, strides = make_grid(height=48, width=48, level_strides=(8,))  # points at 4, 12, ..., 44
    box_preds = torch.zeros(1, 36, 4)
    box_preds[0, :, :2] = 0.25 - grid_xy  # every prediction is the box (2, 2, 8, 8) = gt 0 exactly
    batch = {
        "box_preds": box_preds,
        "obj_logits": torch.linspace(-1.0, 1.0, 36)[None],  # distinct costs, no ties
        "cls_logits": torch.zeros(1, 36, 2),
        "grid_xy": grid_xy,
        "strides": strides,
        # gt 0 at the corner has 4 centre anchors; gt 1 at the bottom edge has 6; 10 candidates in all
        "gt_boxes": torch.tensor([[[-2.0, -2.0, 6.0, 6.0], [26.0, 40.0, 34.0, 48.0]]]),
        "gt_labels": torch.tensor([[0, 1]]),
    }
    fg, matched_gt, _ = assign(batch)
    # gt 0: IoU 1 with all 10 candidates -> k = 10, all of them; gt 1 (IoU 0, k = 1) keeps its cheapest
    # anchor, because an anchor claimed twice goes to the lower cost (55 + cls against 1e6 + cls)
    assert int(fg.sum()) == 10
    assert int((matched_gt[fg] == 0).sum()) == 9 and int((matched_gt[fg] == 1).sum()) == 1
    ours = yolox_loss(**batch, use_l1=True)
    ref = yolox_reference_loss(**batch, use_l1=True)
    for part in PARTS:
        torch.testing.assert_close(ours[part], ref[part], rtol=1e-5, atol=1e-6)


def test_real_process_group_of_one_changes_nothing(tmp_path):
    batch = make_batch(counts=[2, 3], seed=6)
    expected = yolox_loss(**batch, use_l1=True)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        parts = yolox_loss(**batch, use_l1=True)
    finally:
        torch.distributed.destroy_process_group()
    for part in PARTS:
        torch.testing.assert_close(parts[part], expected[part])
