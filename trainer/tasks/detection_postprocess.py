"""Detection outputs -> detections: the head's own `decode()`, then selection and NMS.

- ``decode_outputs``: finds the registered head whose ``decode_inputs`` the outputs hold and calls
  its ``decode`` (boxes XYXY input pixels, scores per class; a new detection head with a
  ``decode`` works here without a change).
- ``postprocess_detections``: multi-label selection (every anchor x class pair above the score
  threshold is a candidate, as torchvision RetinaNet does; official YOLOX keeps only each
  anchor's best class), top-k, clip to the image, class-aware ``batched_nms``, keep the best
  ``max_detections``. Computed in float32 whatever the model's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

from trainer.components import load_builtin_components
from trainer.registry import HEADS


def decode_outputs(outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, A, 4) XYXY boxes and (B, A, C) scores from the outputs of any registered detection head."""
    load_builtin_components()  # the heads register themselves when their modules are imported
    expected = []
    for name in HEADS.names():
        head = HEADS.get(name)
        inputs = getattr(head, "decode_inputs", None)
        if inputs is None:
            continue
        if inputs <= outputs.keys():
            return head.decode(outputs)
        expected.append(f"{name} ({', '.join(sorted(inputs))})")
    raise ValueError(
        f"cannot tell the detection head from the outputs {sorted(outputs)}: expected {' or '.join(expected)}"
    )


def postprocess_options(postprocess: Any) -> dict[str, Any]:
    """The recipe's `model.postprocess` (dataclass, DictConfig or dict) -> detections_from_outputs options."""
    names = ("score_threshold", "nms_iou", "max_detections", "pre_nms_top_k")
    if isinstance(postprocess, dict):
        return {name: postprocess[name] for name in names}
    return {name: getattr(postprocess, name) for name in names}


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
    """Decode (by the head that made the outputs) and NMS, per image (see ``postprocess_detections``)."""
    boxes, scores = decode_outputs(outputs)
    return postprocess_detections(
        boxes=boxes,
        scores=scores,
        score_threshold=score_threshold,
        nms_iou=nms_iou,
        max_detections=max_detections,
        pre_nms_top_k=pre_nms_top_k,
        image_size=image_size,
    )
