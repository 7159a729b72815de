"""Per-image reference formulations of the detection losses, written the way the official code is.

``yolox_reference_loss`` follows Megvii-BaseDetection/YOLOX ``YOLOXHead.get_losses`` /
``get_assignments`` / ``simota_matching`` (commit 6ddff48) one image at a time, with a Python loop
over gts for the dynamic-k selection and ``.item()`` per image, as the official code does.
``retinanet_reference_loss`` runs torchvision's own ``RetinaNet.compute_loss`` (matcher loop plus
``RetinaNetHead.compute_loss``). Both take the batched inputs of the trainer's losses (padded gts,
label -1 = padding) so tests and benchmarks can call them side by side. Not used in training.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
from torchvision.ops import box_convert


def _iou_matrix_cxcywh(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    top_left = torch.max(boxes_a[:, None, :2] - boxes_a[:, None, 2:] / 2, boxes_b[:, :2] - boxes_b[:, 2:] / 2)
    bottom_right = torch.min(boxes_a[:, None, :2] + boxes_a[:, None, 2:] / 2, boxes_b[:, :2] + boxes_b[:, 2:] / 2)
    area_a = torch.prod(boxes_a[:, 2:], 1)
    area_b = torch.prod(boxes_b[:, 2:], 1)
    overlap = (top_left < bottom_right).type(top_left.type()).prod(dim=2)
    inter = torch.prod(bottom_right - top_left, 2) * overlap
    return inter / (area_a[:, None] + area_b - inter)


def _iou_loss_cxcywh(pred: Tensor, target: Tensor) -> Tensor:
    top_left = torch.max(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    bottom_right = torch.min(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    area_p = torch.prod(pred[:, 2:], 1)
    area_g = torch.prod(target[:, 2:], 1)
    overlap = (top_left < bottom_right).type(top_left.type()).prod(dim=1)
    inter = torch.prod(bottom_right - top_left, 1) * overlap
    iou = inter / (area_p + area_g - inter + 1e-16)
    return 1 - iou**2


@torch.no_grad()
def _yolox_assign_one_image(
    *, gts, classes, preds, cls_logits, obj_logits, strides, x_shifts, y_shifts, center_radius, topk_candidates
):
    """Official get_assignments for one image; returns fg_mask (A,), matched gt index and IoU per fg."""
    num_gt = gts.shape[0]
    num_classes = cls_logits.shape[1]
    # geometry constraint: anchor point strictly within center_radius * stride of a gt centre
    x_centres = ((x_shifts + 0.5) * strides).unsqueeze(0)
    y_centres = ((y_shifts + 0.5) * strides).unsqueeze(0)
    centre_dist = strides.unsqueeze(0) * center_radius
    c_l = x_centres - (gts[:, 0:1] - centre_dist)
    c_r = (gts[:, 0:1] + centre_dist) - x_centres
    c_t = y_centres - (gts[:, 1:2] - centre_dist)
    c_b = (gts[:, 1:2] + centre_dist) - y_centres
    is_in_centres = torch.stack([c_l, c_t, c_r, c_b], 2).min(dim=-1).values > 0.0
    fg_mask = is_in_centres.sum(dim=0) > 0
    geometry_relation = is_in_centres[:, fg_mask]
    num_in = int(fg_mask.sum().item())
    if num_in == 0:  # the official code fails here (topk on an empty tensor); no foreground instead
        return fg_mask, torch.zeros(0, dtype=torch.int64, device=gts.device), gts.new_zeros(0)

    pair_ious = _iou_matrix_cxcywh(gts, preds[fg_mask])
    pair_iou_cost = -torch.log(pair_ious + 1e-8)
    gt_one_hot = F.one_hot(classes.to(torch.int64), num_classes).float()
    joint = (cls_logits[fg_mask].float().sigmoid() * obj_logits[fg_mask].float().sigmoid()[:, None]).sqrt()
    pair_cls_cost = F.binary_cross_entropy(
        joint.unsqueeze(0).repeat(num_gt, 1, 1), gt_one_hot.unsqueeze(1).repeat(1, num_in, 1), reduction="none"
    ).sum(-1)
    cost = pair_cls_cost + 3.0 * pair_iou_cost + 1e6 * (~geometry_relation)

    # simota_matching
    matching = torch.zeros_like(cost, dtype=torch.uint8)
    topk_ious, _ = torch.topk(pair_ious, min(topk_candidates, pair_ious.size(1)), dim=1)
    dynamic_ks = torch.clamp(topk_ious.sum(1).int(), min=1)
    for gt_idx in range(num_gt):
        _, pos_idx = torch.topk(cost[gt_idx], k=int(dynamic_ks[gt_idx]), largest=False)
        matching[gt_idx][pos_idx] = 1
    anchor_matching_gt = matching.sum(0)
    if anchor_matching_gt.max() > 1:
        multiple = anchor_matching_gt > 1
        _, cost_argmin = torch.min(cost[:, multiple], dim=0)
        matching[:, multiple] *= 0
        matching[cost_argmin, multiple] = 1
    fg_in = anchor_matching_gt > 0
    fg_mask[fg_mask.clone()] = fg_in
    matched_gt = matching[:, fg_in].argmax(0)
    matched_iou = (matching * pair_ious).sum(0)[fg_in]
    return fg_mask, matched_gt, matched_iou


def yolox_reference_loss(
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
    """Official YOLOX get_losses, one image at a time (local foreground count, no DDP reduce)."""
    num_classes = cls_logits.shape[-1]
    x_shifts, y_shifts = grid_xy[:, 0], grid_xy[:, 1]
    preds = torch.cat(
        [(box_preds[..., :2] + grid_xy) * strides[:, None], torch.exp(box_preds[..., 2:]) * strides[:, None]], -1
    )
    cls_targets, reg_targets, l1_targets, obj_targets, fg_masks = [], [], [], [], []
    num_fg = 0.0
    for b in range(box_preds.shape[0]):
        valid = gt_labels[b] >= 0
        gts = box_convert(gt_boxes[b][valid], in_fmt="xyxy", out_fmt="cxcywh")
        classes = gt_labels[b][valid]
        if gts.shape[0] == 0:
            fg_mask = torch.zeros(box_preds.shape[1], dtype=torch.bool, device=box_preds.device)
            matched_gt = torch.zeros(0, dtype=torch.int64, device=box_preds.device)
            matched_iou = box_preds.new_zeros(0)
        else:
            fg_mask, matched_gt, matched_iou = _yolox_assign_one_image(
                gts=gts,
                classes=classes,
                preds=preds[b].detach(),
                cls_logits=cls_logits[b].detach(),
                obj_logits=obj_logits[b].detach(),
                strides=strides,
                x_shifts=x_shifts,
                y_shifts=y_shifts,
                center_radius=center_radius,
                topk_candidates=topk_candidates,
            )
        num_fg += fg_mask.sum().item()
        cls_targets.append(F.one_hot(classes[matched_gt], num_classes) * matched_iou.unsqueeze(-1))
        reg_targets.append(gts[matched_gt])
        obj_targets.append(fg_mask.unsqueeze(-1).float())
        fg_masks.append(fg_mask)
        matched = gts[matched_gt]
        stride = strides[fg_mask]
        l1_targets.append(
            torch.stack(
                [
                    matched[:, 0] / stride - x_shifts[fg_mask],
                    matched[:, 1] / stride - y_shifts[fg_mask],
                    torch.log(matched[:, 2] / stride + 1e-8),
                    torch.log(matched[:, 3] / stride + 1e-8),
                ],
                dim=1,
            )
        )
    fg_masks = torch.cat(fg_masks, 0)
    num_fg = max(num_fg, 1)
    loss_iou = _iou_loss_cxcywh(preds.reshape(-1, 4)[fg_masks], torch.cat(reg_targets, 0)).sum() / num_fg
    loss_obj = (
        F.binary_cross_entropy_with_logits(obj_logits.reshape(-1, 1), torch.cat(obj_targets, 0), reduction="none").sum()
        / num_fg
    )
    loss_cls = (
        F.binary_cross_entropy_with_logits(
            cls_logits.reshape(-1, num_classes)[fg_masks], torch.cat(cls_targets, 0), reduction="none"
        ).sum()
        / num_fg
    )
    if use_l1:
        loss_l1 = (
            F.l1_loss(box_preds.reshape(-1, 4)[fg_masks], torch.cat(l1_targets, 0), reduction="none").sum() / num_fg
        )
    else:
        loss_l1 = box_preds.new_zeros(())
    return {"iou": box_weight * loss_iou, "obj": loss_obj, "cls": loss_cls, "l1": loss_l1}


def retinanet_reference_loss(
    *,
    cls_logits: Tensor,
    box_regression: Tensor,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    box_loss: str = "l1",
    fg_iou_threshold: float = 0.5,
    bg_iou_threshold: float = 0.4,
    allow_low_quality_matches: bool = True,
) -> dict[str, Tensor]:
    """torchvision's RetinaNet.compute_loss (alpha 0.25, gamma 2), one image at a time."""
    num_classes = cls_logits.shape[-1]
    head = RetinaNetHead(in_channels=1, num_anchors=1, num_classes=num_classes).to(cls_logits.device)
    head.regression_head._loss_type = box_loss
    model = SimpleNamespace(
        head=head,
        proposal_matcher=det_utils.Matcher(
            fg_iou_threshold, bg_iou_threshold, allow_low_quality_matches=allow_low_quality_matches
        ),
    )
    targets = []
    for b in range(gt_boxes.shape[0]):
        valid = gt_labels[b] >= 0
        targets.append({"boxes": gt_boxes[b][valid], "labels": gt_labels[b][valid]})
    head_outputs = {"cls_logits": cls_logits, "bbox_regression": box_regression}
    losses = RetinaNet.compute_loss(model, targets, head_outputs, [anchors] * len(targets))
    return {"cls": losses["classification"], "box": losses["bbox_regression"]}
