"""YOLOX loss: SimOTA label assignment plus IoU, objectness, class and L1 terms, batched over images.

Reference: Megvii-BaseDetection/YOLOX, ``yolox/models/yolo_head.py`` (commit 6ddff48). Boxes are
decoded as ``cx = (tx + gx) * s``, ``w = exp(tw) * s``; candidates are the anchor points strictly
within ``center_radius * s`` of a gt centre; the cost is ``sum_c BCE(sqrt(sig(cls) * sig(obj)),
one_hot) + 3 * -log(IoU + 1e-8) + 1e6 * (not a candidate of that gt)``; each gt takes its
``max(1, int(sum of top-10 IoUs))`` lowest-cost anchors and an anchor claimed twice goes to its
lowest-cost gt. Every part is summed and divided by one batch-wide ``max(num_fg, 1)``.

Batched over images on (B, M, A) tensors (gts padded to M), float32 with autocast off, no host
sync. Under torch.distributed the foreground count is summed over ranks, so every rank must call
the loss (it holds a collective), as in training. Deviations from the reference, their reasons and
measured effects: docs/fidelity.md.

Cost: a few (B, M, A) fp32 tensors (B 16, M 100, A 8400: about 54 MB each); no host sync.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_convert

from trainer.constraints import AtLeastOne, NonNegative, Positive
from trainer.models.heads.anchor_free_decoupled import decode_boxes as decode_yolox_boxes
from trainer.registry import LOSSES

COST_IOU_WEIGHT = 3.0
COST_OUTSIDE_CENTRE = 1e6


def _sides(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """left, top, right, bottom and area of (..., 4) cx cy w h boxes, each (...)."""
    centre_x, centre_y, width, height = boxes.unbind(-1)
    half_w, half_h = width / 2, height / 2
    return centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h, width * height


def box_iou_cxcywh(boxes_a: Tensor, boxes_b: Tensor, *, eps: float = 0.0) -> Tensor:
    """Element-wise IoU of broadcastable (..., 4) cx cy w h boxes, as YOLOX computes it.

    Same operations as the reference (corners, max / min, overlap test, w * h), on per-coordinate
    planes so that broadcast pairs stay contiguous along the last dimension.
    """
    left_a, top_a, right_a, bottom_a, area_a = _sides(boxes_a)
    left_b, top_b, right_b, bottom_b, area_b = _sides(boxes_b)
    left, top = torch.maximum(left_a, left_b), torch.maximum(top_a, top_b)
    right, bottom = torch.minimum(right_a, right_b), torch.minimum(bottom_a, bottom_b)
    overlap = (left < right) & (top < bottom)
    inter = (right - left) * (bottom - top) * overlap
    return inter / (area_a + area_b - inter + eps)


def _centre_candidates(
    *, gt_boxes: Tensor, gt_valid: Tensor, grid_xy: Tensor, strides: Tensor, center_radius: float
) -> Tensor:
    """(B, M, A): anchor point strictly within center_radius * stride of the gt centre in x and y."""
    anchor_centre = (grid_xy + 0.5) * strides[:, None]  # (A, 2)
    reach = strides * center_radius  # (A,)
    gt_x, gt_y = gt_boxes[..., 0:1], gt_boxes[..., 1:2]  # (B, M, 1)
    # the reference's min(a - (g - r), (g + r) - a, ...) > 0, as comparisons: a float difference is
    # positive exactly when a > b, so the mask is the same bit for bit, with fewer float passes
    inside = (gt_x - reach) < anchor_centre[:, 0]
    inside &= (gt_x + reach) > anchor_centre[:, 0]
    inside &= (gt_y - reach) < anchor_centre[:, 1]
    inside &= (gt_y + reach) > anchor_centre[:, 1]
    return inside & gt_valid[..., None]


def _candidate_index(candidate: Tensor) -> Tensor | None:
    """(B, K) anchor indices with every candidate of each image first, in anchor order; None = all.

    K is the largest candidate count in the batch. It is read on the host only on the CPU, where a
    host read costs nothing and the (B, M, K) / (B, K, C) work then shrinks with K (K is a few
    hundred where A is thousands); on accelerators K = A (no host sync, no gather).
    """
    num_anchors = candidate.shape[1]
    if candidate.device.type != "cpu":
        return None
    k = max(1, int(candidate.sum(dim=1).max()))
    if k >= num_anchors:
        return None
    key = candidate * torch.arange(num_anchors, 0, -1, device=candidate.device)  # A..1 on candidates, 0 elsewhere
    return key.topk(k, dim=1).indices  # distinct; candidates first in ascending anchor order


def _take(values: Tensor, index: Tensor | None) -> Tensor:
    """(B, A, ...) -> (B, K, ...) rows at ``index`` (B, K); unchanged when index is None."""
    if index is None:
        return values
    shape = index.shape + values.shape[2:]
    return values.gather(1, index.reshape(index.shape + (1,) * (values.dim() - 2)).expand(shape))


@torch.no_grad()
def _simota_compact(
    *,
    pred_boxes: Tensor,
    obj_logits: Tensor,
    cls_logits: Tensor,
    grid_xy: Tensor,
    strides: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    center_radius: float,
    topk_candidates: int,
) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
    """SimOTA on the candidate anchors only: (index (B, K) or None, fg, matched_gt, matched_iou (B, K))."""
    gt_valid = gt_labels >= 0
    in_centre = _centre_candidates(
        gt_boxes=gt_boxes, gt_valid=gt_valid, grid_xy=grid_xy, strides=strides, center_radius=center_radius
    )
    candidate = in_centre.any(dim=1)  # (B, A): the reference's per-image anchor filter
    index = _candidate_index(candidate)
    if index is not None:
        in_centre = in_centre.gather(2, index[:, None, :].expand(-1, in_centre.shape[1], -1))
        candidate = candidate.gather(1, index)
        pred_boxes, obj_logits, cls_logits = (_take(x, index) for x in (pred_boxes, obj_logits, cls_logits))
    num_anchors = pred_boxes.shape[1]  # K
    pair_ok = candidate[:, None, :] & gt_valid[..., None]  # (B, M, K)
    ious = box_iou_cxcywh(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :])  # (B, M, K)

    # dynamic k from the top IoUs among the image's candidates (zeros elsewhere add nothing)
    num_top = min(topk_candidates, num_anchors)
    top_ious = ious.masked_fill(~pair_ok, 0.0).topk(num_top, dim=2).values
    dynamic_k = top_ious.sum(dim=2).int().clamp(min=1)  # (B, M)

    # class cost: sum over classes of BCE(sqrt(sig(cls) * sig(obj)), one_hot), F.binary_cross_entropy clamps;
    # the one-hot terms are evaluated at the gt's class only (gathered before the logs)
    joint = (cls_logits.sigmoid() * obj_logits.sigmoid()[..., None]).sqrt()  # (B, K, C)
    neg_sum = (-torch.log(1.0 - joint).clamp(min=-100.0)).sum(dim=-1)  # (B, K)
    class_index = gt_labels.clamp(min=0)[..., None].expand(-1, -1, num_anchors)  # (B, M, K)
    joint_y = joint.transpose(1, 2).gather(1, class_index)  # (B, M, K)
    bce_pos = -torch.log(joint_y).clamp(min=-100.0)
    bce_neg = -torch.log(1.0 - joint_y).clamp(min=-100.0)
    cls_cost = neg_sum[:, None, :] + (bce_pos - bce_neg)

    cost = cls_cost + COST_IOU_WEIGHT * -torch.log(ious + 1e-8) + COST_OUTSIDE_CENTRE * (~in_centre)
    cost = cost.masked_fill(~pair_ok, float("inf"))

    # each gt takes its dynamic_k lowest-cost anchors (dynamic_k <= num_top <= number of candidates)
    top_cost, top_index = cost.topk(num_top, dim=2, largest=False)
    rank = torch.arange(num_top, device=cost.device)
    take = (rank < dynamic_k[..., None]) & torch.isfinite(top_cost)
    matching = torch.zeros_like(cost, dtype=torch.bool).scatter_(2, top_index, take)

    # an anchor claimed by several gts goes to the gt of lowest cost (over all gts of the image)
    num_claims = matching.sum(dim=1)  # (B, K)
    # min / max with dim give the first index of the extreme, as argmin / argmax, and are faster on the CPU
    matched_gt = torch.where(num_claims > 1, cost.min(dim=1).indices, matching.to(torch.uint8).max(dim=1).indices)
    matched_iou = ious.gather(1, matched_gt[:, None, :]).squeeze(1)
    return index, num_claims > 0, matched_gt, matched_iou


def _scatter(values: Tensor, index: Tensor | None, num_anchors: int) -> Tensor:
    """(B, K) at ``index`` -> (B, A), zero (False) elsewhere."""
    if index is None:
        return values
    return values.new_zeros((values.shape[0], num_anchors)).scatter_(1, index, values)


@torch.no_grad()
def simota_assign(
    *,
    pred_boxes: Tensor,
    obj_logits: Tensor,
    cls_logits: Tensor,
    grid_xy: Tensor,
    strides: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    center_radius: float = 1.5,
    topk_candidates: int = 10,
) -> tuple[Tensor, Tensor, Tensor]:
    """SimOTA over a padded batch (fp32 inputs; gt_boxes (B, M, 4) cx cy w h, M >= 1).

    Returns ``fg`` (B, A) bool, ``matched_gt`` (B, A) int64 index into M (meaningful on fg only)
    and ``matched_iou`` (B, A), the IoU of each anchor's prediction with its matched gt.
    """
    index, fg, matched_gt, matched_iou = _simota_compact(
        pred_boxes=pred_boxes, obj_logits=obj_logits, cls_logits=cls_logits, grid_xy=grid_xy, strides=strides,
        gt_boxes=gt_boxes, gt_labels=gt_labels, center_radius=center_radius, topk_candidates=topk_candidates,
    )
    num_anchors = pred_boxes.shape[1]
    return tuple(_scatter(x, index, num_anchors) for x in (fg, matched_gt, matched_iou))


def foreground_normaliser(num_fg: Tensor) -> Tensor:
    """max(fg count, 1), summed over ranks and divided by the world size under torch.distributed."""
    num_fg = num_fg.detach().float()
    world_size = 1
    if dist.is_available() and dist.is_initialized():
        num_fg = num_fg.clone()
        dist.all_reduce(num_fg, op=dist.ReduceOp.SUM)
        world_size = dist.get_world_size()
    return num_fg.clamp(min=1.0) / world_size


def _l1_loss(
    *, box_preds: Tensor, matched_boxes: Tensor, fg: Tensor, grid_xy: Tensor, strides: Tensor, num_fg: Tensor
) -> Tensor:
    """L1 between the raw tx ty tw th and the matched boxes encoded the same way, on foreground anchors."""
    stride = strides[:, None]
    l1_target = torch.cat(
        [matched_boxes[..., :2] / stride - grid_xy, torch.log(matched_boxes[..., 2:] / stride + 1e-8)], dim=-1
    )
    l1_target = torch.where(fg[..., None], l1_target, box_preds.detach())
    return (box_preds - l1_target).abs().sum() / num_fg


def yolox_loss(
    *,
    box_preds: Tensor,
    obj_logits: Tensor,
    cls_logits: Tensor,
    grid_xy: Tensor,
    strides: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    use_l1: bool,
    box_weight: float = 5.0,
    center_radius: float = 1.5,
    topk_candidates: int = 10,
) -> dict[str, Tensor]:
    """YOLOX loss parts ``iou`` (times box_weight), ``obj``, ``cls``, ``l1`` (0 when not use_l1)."""
    with torch.autocast(device_type=box_preds.device.type, enabled=False):
        box_preds, obj_logits, cls_logits = box_preds.float(), obj_logits.float(), cls_logits.float()
        grid_xy, strides = grid_xy.float(), strides.float()
        batch_size, _, num_classes = cls_logits.shape
        if gt_boxes.shape[1] == 0:  # one padding row keeps a single code path
            gt_boxes = gt_boxes.new_zeros((batch_size, 1, 4))
            gt_labels = gt_labels.new_full((batch_size, 1), -1)
        gt_cxcywh = box_convert(gt_boxes.float(), in_fmt="xyxy", out_fmt="cxcywh")
        pred_boxes = decode_yolox_boxes(box_preds=box_preds, grid_xy=grid_xy, strides=strides)

        index, fg_k, matched_gt_k, matched_iou_k = _simota_compact(
            pred_boxes=pred_boxes.detach(),
            obj_logits=obj_logits.detach(),
            cls_logits=cls_logits.detach(),
            grid_xy=grid_xy,
            strides=strides,
            gt_boxes=gt_cxcywh,
            gt_labels=gt_labels,
            center_radius=center_radius,
            topk_candidates=topk_candidates,
        )
        num_anchors = box_preds.shape[1]
        fg, matched_gt = _scatter(fg_k, index, num_anchors), _scatter(matched_gt_k, index, num_anchors)
        num_fg = foreground_normaliser(fg.sum())
        matched_boxes = gt_cxcywh.gather(1, matched_gt[..., None].expand(-1, -1, 4))  # (B, A, 4)
        box_target = torch.where(fg[..., None], matched_boxes, pred_boxes.detach())
        iou = box_iou_cxcywh(pred_boxes, box_target, eps=1e-16)
        loss_iou = torch.where(fg, 1.0 - iou**2, 0.0).sum() / num_fg

        loss_obj = F.binary_cross_entropy_with_logits(obj_logits, fg.float(), reduction="sum") / num_fg

        # class term on the candidate anchors only (foreground is among them)
        matched_labels = gt_labels.gather(1, matched_gt_k).clamp(min=0)
        cls_target = F.one_hot(matched_labels, num_classes).float() * matched_iou_k[..., None]
        cls_bce = F.binary_cross_entropy_with_logits(_take(cls_logits, index), cls_target, reduction="none")
        loss_cls = torch.where(fg_k[..., None], cls_bce, 0.0).sum() / num_fg

        loss_l1 = _l1_loss(box_preds=box_preds, matched_boxes=matched_boxes, fg=fg, grid_xy=grid_xy,
                           strides=strides, num_fg=num_fg) if use_l1 else box_preds.new_zeros(())

    return {"iou": box_weight * loss_iou, "obj": loss_obj, "cls": loss_cls, "l1": loss_l1}


@LOSSES.register("yolox_loss", heads={"detection": ("anchor_free_decoupled",)}, parts=("iou", "obj", "cls", "l1"))
class YOLOXLoss(nn.Module):
    """YOLOX criterion (SimOTA). Parts: ``iou`` (x box_weight), ``obj``, ``cls``, ``l1``.

    ``l1_activate_epoch``: the L1 part is on from this 0-based epoch (the official recipe turns it on
    with mosaic off, for the last 15 epochs); None keeps it off. ``l1`` is returned as 0 while off.
    """

    def __init__(
        self,
        *,
        l1_activate_epoch: Annotated[int, NonNegative] | None = None,
        box_weight: Annotated[float, NonNegative] = 5.0,
        center_radius: Annotated[float, Positive] = 1.5,
        topk_candidates: Annotated[int, AtLeastOne] = 10,
    ) -> None:
        super().__init__()
        if l1_activate_epoch is not None and l1_activate_epoch < 0:
            raise ValueError(f"l1_activate_epoch must be >= 0 or None, got {l1_activate_epoch}")
        if box_weight < 0:
            raise ValueError(f"box_weight must be >= 0, got {box_weight}")
        if center_radius <= 0:
            raise ValueError(f"center_radius must be > 0, got {center_radius}")
        if topk_candidates < 1:
            raise ValueError(f"topk_candidates must be >= 1, got {topk_candidates}")
        self.l1_activate_epoch = l1_activate_epoch
        self.box_weight = float(box_weight)
        self.center_radius = float(center_radius)
        self.topk_candidates = int(topk_candidates)

    def forward(
        self,
        *,
        box_preds: Tensor,
        obj_logits: Tensor,
        cls_logits: Tensor,
        grid_xy: Tensor,
        strides: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor,
        epoch: int,
    ) -> dict[str, Tensor]:
        use_l1 = self.l1_activate_epoch is not None and epoch >= self.l1_activate_epoch
        return yolox_loss(
            box_preds=box_preds,
            obj_logits=obj_logits,
            cls_logits=cls_logits,
            grid_xy=grid_xy,
            strides=strides,
            gt_boxes=gt_boxes,
            gt_labels=gt_labels,
            use_l1=use_l1,
            box_weight=self.box_weight,
            center_radius=self.center_radius,
            topk_candidates=self.topk_candidates,
        )

    def extra_repr(self) -> str:
        return (
            f"l1_activate_epoch={self.l1_activate_epoch}, box_weight={self.box_weight}, "
            f"center_radius={self.center_radius}, topk_candidates={self.topk_candidates}"
        )
