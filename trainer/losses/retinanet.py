"""RetinaNet loss (sigmoid focal classification + box regression), batched over images.

Reference: torchvision 0.29.1 ``models/detection/retinanet.py`` (``RetinaNet.compute_loss`` with
``RetinaNetHead.compute_loss``) and ``ops/focal_loss.py``. Anchors are matched on IoU(gt, anchor):
below ``bg_iou_threshold`` background, between the thresholds ignored, otherwise the best gt; with
low-quality matches every anchor tied at a gt's best IoU gets its own best gt. cls is the focal loss
(sum) over non-ignored anchors x classes; box is L1 / smooth L1 (beta 1) on the encoded target
(weights 1, 1, 1, 1) or GIoU (eps 1e-7) on decoded boxes, over foreground anchors. Both are divided
by max(1, foreground of the image) and averaged over images. An image without gt: all background.

Deviations from the reference (deliberate)
------------------------------------------
- Batched: gts are padded to M (rows with label -1 are padding, wherever they sit) and the matcher
  runs on a (B, M, A) IoU matrix with padding rows at IoU -1, so they never win and never create
  low-quality matches; losses are dense (B, A) masks instead of per-image boolean indexing. Same
  values up to summation order.
- Losses are computed in fp32 with autocast off (torchvision computes them in the input dtype).
- ``alpha`` and ``gamma`` are options (torchvision hard-codes the defaults 0.25 and 2).

Kept on purpose (a torchvision quirk, reproduced for equality): a gt that overlaps no anchor (its
best IoU is 0) makes every anchor with IoU 0 to it a low-quality match to that anchor's argmax gt.
Out-of-image gts should be dropped by the data pipeline.

Cost: the (B, M, A) IoU matrix (torchvision's ``box_iou`` makes a few of that size while computing).
No host sync, except inside torchvision's ``generalized_box_iou_loss`` (boolean-mask indexing).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, generalized_box_iou_loss, sigmoid_focal_loss

from trainer.registry import LOSSES

BOX_LOSSES = ("l1", "smooth_l1", "giou")
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
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


def decode_boxes(*, box_regression: Tensor, anchors: Tensor) -> Tensor:
    """Inverse of encode_boxes, with dw and dh clamped at log(1000 / 16) as torchvision does."""
    an_x, an_y, an_w, an_h = _centre_size(anchors.to(box_regression.dtype))
    centre_x = box_regression[..., 0] * an_w + an_x
    centre_y = box_regression[..., 1] * an_h + an_y
    half_w = 0.5 * (torch.exp(box_regression[..., 2].clamp(max=BBOX_XFORM_CLIP)) * an_w)
    half_h = 0.5 * (torch.exp(box_regression[..., 3].clamp(max=BBOX_XFORM_CLIP)) * an_h)
    return torch.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], dim=-1)


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
    quality = box_iou(gt_boxes.reshape(-1, 4), anchors).view(batch_size, num_gt, num_anchors)
    quality = quality.masked_fill(~gt_valid[..., None], -1.0)

    best_iou, best_gt = quality.max(dim=1)  # (B, A)
    matches = best_gt.masked_fill(best_iou < bg_iou_threshold, BACKGROUND)
    matches = matches.masked_fill((best_iou >= bg_iou_threshold) & (best_iou < fg_iou_threshold), IGNORED)
    if allow_low_quality_matches:
        best_per_gt = quality.max(dim=2, keepdim=True).values  # (B, M, 1)
        tied = ((quality == best_per_gt) & gt_valid[..., None]).any(dim=1)  # (B, A)
        matches = torch.where(tied, best_gt, matches)
    return matches


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
        batch_size, _, num_classes = cls_logits.shape
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

        labels = gt_labels.gather(1, matched_gt).clamp(min=0)
        cls_target = F.one_hot(labels, num_classes).float() * fg[..., None]
        focal = sigmoid_focal_loss(cls_logits, cls_target, alpha=alpha, gamma=gamma, reduction="none")
        focal = torch.where((matches != IGNORED)[..., None], focal, 0.0)
        loss_cls = (focal.sum(dim=(1, 2)) / num_fg).sum() / batch_size

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


@LOSSES.register("retinanet_loss", heads={"detection": ("anchor_decoupled",)})
class RetinaNetLoss(nn.Module):
    """RetinaNet criterion as torchvision computes it. Parts: ``cls`` (focal), ``box``."""

    def __init__(
        self,
        *,
        alpha: float = 0.25,
        gamma: float = 2.0,
        box_loss: str = "l1",
        fg_iou_threshold: float = 0.5,
        bg_iou_threshold: float = 0.4,
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
