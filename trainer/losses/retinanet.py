"""RetinaNet loss (sigmoid focal classification + box regression), batched over images.

Reference: torchvision 0.29.1 ``models/detection/retinanet.py`` (``RetinaNet.compute_loss`` with
``RetinaNetHead.compute_loss``) and ``ops/focal_loss.py``. Anchors are matched on IoU(gt, anchor):
below ``bg_iou_threshold`` background, between the thresholds ignored, otherwise the best gt; with
low-quality matches every anchor tied at a gt's best IoU gets its own best gt. cls is the focal loss
(sum) over non-ignored anchors x classes; box is L1 / smooth L1 (beta 1) on the encoded target
(weights 1, 1, 1, 1) or GIoU (eps 1e-7) on decoded boxes, over foreground anchors. Both are divided
by max(1, foreground of the image) and averaged over images. An image without gt: all background.

Batched over images (gts padded to M, rows with label -1 are padding), float32 with autocast off;
on the CPU the matcher and the focal loss run in cache-sized blocks. Out-of-image gts should be
dropped by the data pipeline (a gt overlapping no anchor makes low-quality matches, as in
torchvision). Deviations from the reference, their reasons and measured effects: docs/fidelity.md.

Cost: the (B, M, A) IoU matrix (one block of images at a time on the CPU) and the (B, A, C) logits'
gradient. No host sync, except inside torchvision's ``generalized_box_iou_loss`` (boolean-mask indexing).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss

from trainer.constraints import NonNegative, Probability, Range
from trainer.models.heads.anchor_decoupled import decode_boxes  # the head's decoding (inverse of encode_boxes)
from trainer.registry import LOSSES

BOX_LOSSES = ("l1", "smooth_l1", "giou")
BACKGROUND = -1
IGNORED = -2


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    width = boxes[..., 2] - boxes[..., 0]
    height = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * width, boxes[..., 1] + 0.5 * height, width, height


def encode_boxes(*, gt_boxes: Tensor, anchors: Tensor) -> Tensor:
    """XYXY gt boxes relative to XYXY anchors -> (dx, dy, dw, dh), box-coder weights (1, 1, 1, 1)."""
    gt_x, gt_y, gt_w, gt_h = _centre_size(gt_boxes)
    an_x, an_y, an_w, an_h = _centre_size(anchors)
    return torch.stack(
        [(gt_x - an_x) / an_w, (gt_y - an_y) / an_h, torch.log(gt_w / an_w), torch.log(gt_h / an_h)], dim=-1
    )


CPU_BLOCK_ELEMENTS = 1 << 18  # with one intra-op thread: about 1 MB of fp32 per temporary, in a core's L2
# With several threads every op is a parallel region ending at a barrier; on a busy machine a
# barrier waits for a descheduled thread, so blocks are made larger to need fewer of them
# (measured on 2 loaded cores: 2^18 elements 4x slower than 2^22; on 2 idle cores the two are within
# noise, 372 vs 338 ms for the batch-16 benchmark; on 1 thread 2^18 is the fastest).
CPU_BLOCK_THREADED_FACTOR = 16


def _blocks(count: int, per_item: int, device: torch.device) -> list[slice]:
    """Slices of ``range(count)``: one on accelerators; on the CPU cache-sized blocks of items."""
    if device.type != "cpu":
        return [slice(0, count)]
    elements = CPU_BLOCK_ELEMENTS * (1 if torch.get_num_threads() == 1 else CPU_BLOCK_THREADED_FACTOR)
    step = max(1, elements // max(1, per_item))
    return [slice(start, min(start + step, count)) for start in range(0, count, step)]


def _pairwise_iou(boxes: Tensor, anchor_planes: Tensor) -> Tensor:
    """(..., M, 4) XYXY x (4, A) anchor coordinate planes -> (..., M, A): torchvision's ``box_iou``,
    the same operations on contiguous per-coordinate planes, so the same values bit for bit."""
    x1, y1, x2, y2 = (v[..., None] for v in boxes.unbind(-1))
    ax1, ay1, ax2, ay2 = anchor_planes.unbind(0)
    width = (torch.minimum(x2, ax2) - torch.maximum(x1, ax1)).clamp_(min=0)
    height = (torch.minimum(y2, ay2) - torch.maximum(y1, ay1)).clamp_(min=0)
    inter = width.mul_(height)
    union = ((x2 - x1) * (y2 - y1) + (ax2 - ax1) * (ay2 - ay1)).sub_(inter)
    return inter.div_(union)


@torch.no_grad()
def match_anchors(
    *,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    fg_iou_threshold: float = 0.5,
    bg_iou_threshold: float = 0.4,
    allow_low_quality_matches: bool = True,
) -> Tensor:
    """(B, A) int64: matched gt index (>= 0), -1 background, -2 ignored (torchvision's Matcher)."""
    batch_size, num_gt = gt_valid.shape
    num_anchors = anchors.shape[0]
    if num_gt == 0:
        return torch.full((batch_size, num_anchors), BACKGROUND, dtype=torch.int64, device=anchors.device)
    anchor_planes = anchors.t().contiguous()
    matches = torch.empty((batch_size, num_anchors), dtype=torch.int64, device=anchors.device)
    for block in _blocks(batch_size, num_gt * num_anchors, anchors.device):
        valid = gt_valid[block][..., None]  # (b, M, 1)
        keep = valid.to(anchors.dtype)
        # padding rows -> IoU -1 exactly (iou * 1 - 0 or iou * 0 - 1), so they never win
        quality = _pairwise_iou(gt_boxes[block], anchor_planes).mul_(keep).sub_(1.0 - keep)  # (b, M, A)
        best_iou, best_gt = quality.max(dim=1)  # (b, A)
        found = best_gt.masked_fill(best_iou < bg_iou_threshold, BACKGROUND)
        found.masked_fill_((best_iou >= bg_iou_threshold) & (best_iou < fg_iou_threshold), IGNORED)
        if allow_low_quality_matches:
            # an anchor tied at some valid gt's best IoU: max over gts of (IoU - that gt's best) == 0
            # (a float difference is 0 exactly when the values are equal); padding rows get best 2
            best_per_gt = quality.amax(dim=2, keepdim=True).masked_fill_(~valid, 2.0)  # (b, M, 1)
            tied = quality.sub_(best_per_gt).amax(dim=1) == 0  # (b, A)
            found = torch.where(tied, best_gt, found)
        matches[block] = found
    return matches


def _focal_block(
    logits: Tensor, target: Tensor, *, alpha: float, gamma: float, grad_rows: Tensor | None = None
) -> Tensor:
    """Focal loss of (R, C) logits for a one-hot target at class ``target`` (R,) (-1: none):
    the per-row sum (R,), or, given ``grad_rows`` (R, 1), the gradient (R, C) of sum(rows * grad)."""
    w_neg, w_pos = (1.0 - alpha, alpha) if alpha >= 0 else (1.0, 1.0)
    column = target.clamp(min=0)[:, None]
    on = (target >= 0)[:, None]
    x_y = logits.gather(1, column)
    p_y = torch.sigmoid(x_y)
    q_y = 1.0 - p_y
    p = torch.sigmoid(logits)
    if grad_rows is None:  # negative: softplus(x) p^g; positive: softplus(-x) (1 - p)^g; times the alpha weight
        negatives = F.softplus(logits).mul_(p.pow_(gamma)).sum(dim=1, keepdim=True)
        neg_y = F.softplus(x_y) * p_y.pow(gamma)
        pos_y = F.softplus(-x_y) * q_y.pow(gamma)
        return (w_neg * negatives + torch.where(on, w_pos * pos_y - w_neg * neg_y, 0.0))[:, 0]
    # d/dx softplus(x) p^g = p^g (p + g softplus(x) (1 - p)); d/dx softplus(-x) (1 - p)^g =
    # -(1 - p)^g ((1 - p) + g p softplus(-x))
    grad = torch.addcmul(p, F.softplus(logits), 1.0 - p, value=gamma).mul_(p.pow_(gamma)).mul_(w_neg * grad_rows)
    pos_grad = -w_pos * q_y.pow(gamma) * (q_y + gamma * p_y * F.softplus(-x_y)) * grad_rows
    return grad.scatter_(1, column, torch.where(on, pos_grad, grad.gather(1, column)))


class _AnchorFocal(torch.autograd.Function):
    """Forward and gradient block by block, from the logits alone: nothing (B, A, C) is kept."""

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, alpha: float, gamma: float) -> Tensor:
        ctx.save_for_backward(logits, target)
        ctx.alpha, ctx.gamma = alpha, gamma
        rows, flat_target = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
        out = logits.new_empty(rows.shape[0])
        for block in _blocks(rows.shape[0], rows.shape[1], logits.device):
            out[block] = _focal_block(rows[block], flat_target[block], alpha=alpha, gamma=gamma)
        return out.view(target.shape)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        logits, target = ctx.saved_tensors
        rows, flat_target = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
        flat_grad = grad_out.reshape(-1, 1)
        grad = torch.empty_like(rows)
        for block in _blocks(rows.shape[0], rows.shape[1], logits.device):
            grad[block] = _focal_block(
                rows[block], flat_target[block], alpha=ctx.alpha, gamma=ctx.gamma, grad_rows=flat_grad[block]
            )
        return grad.view(logits.shape), None, None, None


def anchor_focal_loss(logits: Tensor, target: Tensor, *, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """(..., C) fp32 logits, (...) int64 class of a one-hot target (-1: background) -> (...) the sum
    over classes of ``torchvision.ops.sigmoid_focal_loss(logits, one_hot(target), alpha, gamma)``."""
    return _AnchorFocal.apply(logits, target, float(alpha), float(gamma))


def retinanet_loss(
    *,
    cls_logits: Tensor,
    box_regression: Tensor,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    box_loss: str = "l1",
    fg_iou_threshold: float = 0.5,
    bg_iou_threshold: float = 0.4,
    allow_low_quality_matches: bool = True,
) -> dict[str, Tensor]:
    """RetinaNet loss parts ``cls`` and ``box`` for (B, A, C) logits, (B, A, 4) regression, (A, 4) anchors."""
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"box_loss must be one of {', '.join(BOX_LOSSES)}; got '{box_loss}'")
    with torch.autocast(device_type=cls_logits.device.type, enabled=False):
        cls_logits, box_regression, anchors = cls_logits.float(), box_regression.float(), anchors.float()
        batch_size = cls_logits.shape[0]
        if gt_boxes.shape[1] == 0:  # one padding row keeps a single code path
            gt_boxes = gt_boxes.new_zeros((batch_size, 1, 4))
            gt_labels = gt_labels.new_full((batch_size, 1), -1)
        gt_boxes = gt_boxes.float()
        matches = match_anchors(
            anchors=anchors,
            gt_boxes=gt_boxes,
            gt_valid=gt_labels >= 0,
            fg_iou_threshold=fg_iou_threshold,
            bg_iou_threshold=bg_iou_threshold,
            allow_low_quality_matches=allow_low_quality_matches,
        )
        fg = matches >= 0  # (B, A)
        num_fg = fg.sum(dim=1).clamp(min=1).float()  # (B,)
        matched_gt = matches.clamp(min=0)

        labels = torch.where(fg, gt_labels.gather(1, matched_gt), -1)  # -1: background (all-zero target)
        focal = anchor_focal_loss(cls_logits, labels, alpha=alpha, gamma=gamma)  # (B, A)
        focal = torch.where(matches != IGNORED, focal, 0.0)
        loss_cls = (focal.sum(dim=1) / num_fg).sum() / batch_size

        # background anchors get their own anchor as target: finite values, masked out below
        anchors_b = anchors.expand(batch_size, -1, -1)
        matched_boxes = gt_boxes.gather(1, matched_gt[..., None].expand(-1, -1, 4))
        matched_boxes = torch.where(fg[..., None], matched_boxes, anchors_b)
        if box_loss == "giou":
            decoded = decode_boxes(box_regression=box_regression, anchors=anchors_b)
            per_anchor = generalized_box_iou_loss(decoded, matched_boxes, reduction="none", eps=1e-7)
        else:
            target = encode_boxes(gt_boxes=matched_boxes, anchors=anchors_b)
            if box_loss == "l1":
                per_anchor = F.l1_loss(box_regression, target, reduction="none").sum(dim=-1)
            else:
                per_anchor = F.smooth_l1_loss(box_regression, target, reduction="none", beta=1.0).sum(dim=-1)
        per_anchor = torch.where(fg, per_anchor, 0.0)
        loss_box = (per_anchor.sum(dim=1) / num_fg).sum() / max(1, batch_size)
    return {"cls": loss_cls, "box": loss_box}


@LOSSES.register("retinanet_loss", heads={"detection": ("anchor_decoupled",)}, parts=("cls", "box"))
class RetinaNetLoss(nn.Module):
    """RetinaNet criterion as torchvision computes it. Parts: ``cls`` (focal), ``box``."""

    def __init__(
        self,
        *,
        alpha: Annotated[float, Range(le=1)] = 0.25,
        gamma: Annotated[float, NonNegative] = 2.0,
        box_loss: str = "l1",
        fg_iou_threshold: Annotated[float, Probability] = 0.5,
        bg_iou_threshold: Annotated[float, Probability] = 0.4,
        allow_low_quality_matches: bool = True,
    ) -> None:
        super().__init__()
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {', '.join(BOX_LOSSES)}; got '{box_loss}'")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if alpha > 1:
            raise ValueError(f"alpha must be <= 1 (negative disables the weighting), got {alpha}")
        if not 0.0 <= bg_iou_threshold <= fg_iou_threshold <= 1.0:
            raise ValueError(
                "IoU thresholds must satisfy 0 <= bg_iou_threshold <= fg_iou_threshold <= 1; "
                f"got bg_iou_threshold={bg_iou_threshold}, fg_iou_threshold={fg_iou_threshold}"
            )
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.box_loss = box_loss
        self.fg_iou_threshold = float(fg_iou_threshold)
        self.bg_iou_threshold = float(bg_iou_threshold)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def forward(
        self, *, cls_logits: Tensor, box_regression: Tensor, anchors: Tensor, gt_boxes: Tensor, gt_labels: Tensor
    ) -> dict[str, Tensor]:
        return retinanet_loss(
            cls_logits=cls_logits,
            box_regression=box_regression,
            anchors=anchors,
            gt_boxes=gt_boxes,
            gt_labels=gt_labels,
            alpha=self.alpha,
            gamma=self.gamma,
            box_loss=self.box_loss,
            fg_iou_threshold=self.fg_iou_threshold,
            bg_iou_threshold=self.bg_iou_threshold,
            allow_low_quality_matches=self.allow_low_quality_matches,
        )

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, gamma={self.gamma}, box_loss='{self.box_loss}', "
            f"fg_iou_threshold={self.fg_iou_threshold}, bg_iou_threshold={self.bg_iou_threshold}, "
            f"allow_low_quality_matches={self.allow_low_quality_matches}"
        )
