"""Detection decoding and NMS as pure functions (no state, batched where it matters).

- ``decode_yolox``: YOLOX grid decoding, cx = (tx + gx) * s, w = exp(tw) * s.
- ``decode_retinanet``: torchvision ``BoxCoder`` (weights 1, 1, 1, 1) decoding, with
  log-size deltas clamped at ``log(1000 / 16)``.
- ``postprocess_detections``: multi-label selection (every anchor x class pair above the score
  threshold is a candidate, as torchvision RetinaNet does; official YOLOX keeps only each
  anchor's best class), top-k, clip to the image, class-aware ``batched_nms``, keep the best
  ``max_detections``. Computed in float32 whatever the model's dtype.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def decode_yolox(box_preds: torch.Tensor, grid_xy: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(..., A, 4) raw tx ty tw th + (A, 2) cells + (A,) strides -> (..., A, 4) XYXY pixels."""
    preds = box_preds.float()
    s = strides.float()[:, None]
    centre = (preds[..., :2] + grid_xy.float()) * s
    half = torch.exp(preds[..., 2:4]) * s / 2
    return torch.cat((centre - half, centre + half), dim=-1)


def decode_retinanet(box_regression: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(..., A, 4) dx dy dw dh + (A, 4) XYXY anchors -> (..., A, 4) XYXY pixels."""
    rel = box_regression.float()
    anchors = anchors.float()
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    dw = torch.clamp(rel[..., 2], max=BBOX_XFORM_CLIP)
    dh = torch.clamp(rel[..., 3], max=BBOX_XFORM_CLIP)
    pred_ctr_x = rel[..., 0] * widths + ctr_x
    pred_ctr_y = rel[..., 1] * heights + ctr_y
    half_w = 0.5 * torch.exp(dw) * widths
    half_h = 0.5 * torch.exp(dh) * heights
    return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=-1)


def yolox_scores(obj_logits: torch.Tensor, cls_logits: torch.Tensor) -> torch.Tensor:
    """(B, A) + (B, A, C) logits -> (B, A, C) probabilities sigmoid(obj) * sigmoid(cls)."""
    return torch.sigmoid(obj_logits.float())[..., None] * torch.sigmoid(cls_logits.float())


def retinanet_scores(cls_logits: torch.Tensor) -> torch.Tensor:
    """(B, A, C) logits -> (B, A, C) probabilities."""
    return torch.sigmoid(cls_logits.float())


def postprocess_detections(
    *,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    score_threshold: float,
    nms_iou: float,
    max_detections: int,
    pre_nms_top_k: int,
    image_size: tuple[int, int],
) -> list[dict[str, torch.Tensor]]:
    """Per image ``{"boxes": (K, 4) XYXY, "scores": (K,), "labels": (K,) int64}``, best first.

    ``boxes`` (B, A, 4) XYXY pixels, ``scores`` (B, A, C) probabilities, ``image_size`` (H, W).
    """
    batch, _, num_classes = scores.shape
    flat = scores.float().reshape(batch, -1)
    k = min(int(pre_nms_top_k), flat.shape[1])
    top_scores, top_index = flat.topk(k, dim=1)  # top-k of all, then threshold == threshold, then top-k
    height, width = int(image_size[0]), int(image_size[1])
    results = []
    for b in range(batch):
        keep = top_scores[b] > score_threshold
        kept_scores, kept_index = top_scores[b][keep], top_index[b][keep]
        labels = kept_index % num_classes
        kept_boxes = clip_boxes_to_image(boxes[b].float()[kept_index // num_classes], (height, width))
        order = batched_nms(kept_boxes, kept_scores, labels, nms_iou)[: int(max_detections)]
        results.append({"boxes": kept_boxes[order], "scores": kept_scores[order], "labels": labels[order]})
    return results


def detections_from_outputs(
    outputs: dict[str, torch.Tensor],
    *,
    image_size: tuple[int, int],
    score_threshold: float,
    nms_iou: float,
    max_detections: int,
    pre_nms_top_k: int,
) -> list[dict[str, torch.Tensor]]:
    """Decode and NMS the outputs of ``anchor_free_decoupled`` (YOLOX) or ``anchor_decoupled`` (RetinaNet)."""
    if {"box_preds", "obj_logits", "cls_logits", "grid_xy", "strides"} <= outputs.keys():
        boxes = decode_yolox(outputs["box_preds"], outputs["grid_xy"], outputs["strides"])
        scores = yolox_scores(outputs["obj_logits"], outputs["cls_logits"])
    elif {"cls_logits", "box_regression", "anchors"} <= outputs.keys():
        boxes = decode_retinanet(outputs["box_regression"], outputs["anchors"])
        scores = retinanet_scores(outputs["cls_logits"])
    else:
        raise ValueError(
            f"cannot tell the detection head from the outputs {sorted(outputs)}: expected YOLOX "
            "(box_preds, obj_logits, cls_logits, grid_xy, strides) or RetinaNet (cls_logits, box_regression, anchors)"
        )
    return postprocess_detections(
        boxes=boxes,
        scores=scores,
        score_threshold=score_threshold,
        nms_iou=nms_iou,
        max_detections=max_detections,
        pre_nms_top_k=pre_nms_top_k,
        image_size=image_size,
    )
