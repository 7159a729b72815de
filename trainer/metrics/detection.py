"""COCO box mAP through pycocotools ``COCOeval`` (no home-made mAP).

Two ways to provide the ground truth:

- ``CocoEvaluator(class_names=...)`` + ``add_ground_truth`` per image (any dataset format).
  The COCO gt dict is built from what was added: every image that got ground truth or detections
  is an image of the evaluation (so detections on images without gt count as false positives),
  ``area`` = box w * h, ``iscrowd`` kept, category id of label ``i`` = ``category_ids[i]``
  (default ``i + 1``; annotation ids start at 1, as pycocotools needs).
- ``CocoEvaluator.from_coco_gt(gt_dict)`` for COCO data: the dataset's own annotations (their
  segmentation areas, crowd flags) are used, and the evaluation runs over the images that were
  passed to ``add_detections`` (call it for every evaluated image, with empty tensors when there
  are no detections), as torchvision's and detectron2's evaluators do.

Inputs are tensors on any device, one image (``image_id`` an int; boxes (N, 4)) or one batch
(``image_id`` a sequence or 1-D tensor; boxes a list of (N_i, 4) tensors or a padded
(B, M, 4) tensor).  Rows with label -1 (padding) are dropped in every form.  A call copies to the host once: all of its
tensors are packed into one float64 buffer on the device and transferred together.

Entries are kept per image id, so an image seen twice (DistributedSampler pads the last batch by
repeating samples) is counted once.  Under DDP ``compute`` gathers every rank's entries to
rank 0 (``all_gather_object``), evaluates there and broadcasts the numbers to all ranks.
When there are no detections, or no ground truth, the metrics are 0.0 (pycocotools' -1 for
"no gt" is reported as 0.0); ``per_class_ap`` gives NaN for a class without ground truth.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

METRIC_KEYS = ("mAP50_95", "mAP50", "mAP75")


def _to_host(tensors: list[Tensor]) -> list[np.ndarray]:
    """float64 numpy copies of ``tensors``; those on an accelerator travel in one transfer."""
    on_device = [t for t in tensors if t.device.type != "cpu"]
    flat = np.empty(0)
    if on_device:
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in on_device]).cpu().numpy()
    out, offset = [], 0
    for t in tensors:
        if t.device.type == "cpu":
            out.append(t.detach().to(torch.float64).numpy().reshape(t.shape))
        else:
            out.append(flat[offset : offset + t.numel()].reshape(t.shape))
            offset += t.numel()
    return out


def _per_image(
    image_id: int | Sequence[int] | Tensor, columns: list[Tensor | Sequence[Tensor]]
) -> list[tuple[int, list[np.ndarray]]]:
    """Splits one image's or one batch's columns into (image id, [arrays]) on the host.

    The arrays may come back flattened, padding rows included: callers reshape and filter them.
    """
    ids = image_id if isinstance(image_id, Tensor) else torch.as_tensor(image_id)
    if ids.ndim == 0:  # one image
        host = _to_host([ids.reshape(1)] + [torch.as_tensor(c) for c in columns])
        return [(int(host[0][0]), host[1:])]
    if isinstance(columns[0], Tensor):  # padded batch (B, M, ...)
        host = _to_host([ids] + list(columns))
        return [
            (image, [column[b] for column in host[1:]]) for b, image in enumerate(host[0].astype(np.int64).tolist())
        ]
    # list of per-image tensors: flatten each, concatenate per column, split by element counts
    sizes = [[t.numel() for t in column] for column in columns]
    flat = [torch.cat([t.reshape(-1) for t in column]) if len(column) else torch.zeros(0) for column in columns]
    host = _to_host([ids] + flat)
    starts = [np.cumsum([0] + size) for size in sizes]
    return [
        (image, [column[start[b] : start[b + 1]] for column, start in zip(host[1:], starts)])
        for b, image in enumerate(host[0].astype(np.int64).tolist())
    ]


class CocoEvaluator:
    """Collects boxes and computes ``{"mAP50_95", "mAP50", "mAP75"}`` with pycocotools."""

    def __init__(self, *, class_names: list[str], category_ids: list[int] | None = None) -> None:
        self.class_names = list(class_names)
        self.category_ids = list(category_ids) if category_ids is not None else list(range(1, len(class_names) + 1))
        if len(self.category_ids) != len(self.class_names):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.category_ids)} category ids")
        self._coco_gt: dict | None = None
        self.reset()

    @classmethod
    def from_coco_gt(cls, gt: dict, *, category_ids: list[int] | None = None) -> CocoEvaluator:
        """Evaluator on a dataset's COCO gt dict; label ``i`` is ``category_ids[i]`` (default: sorted ids)."""
        categories = {c["id"]: c.get("name", str(c["id"])) for c in gt.get("categories", [])}
        ids = list(category_ids) if category_ids is not None else sorted(categories)
        evaluator = cls(class_names=[categories.get(i, str(i)) for i in ids], category_ids=ids)
        evaluator._coco_gt = gt
        return evaluator

    def reset(self) -> None:
        self._gts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._dets: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._result: dict | None = None

    def add_ground_truth(
        self,
        image_id: int | Sequence[int] | Tensor,
        boxes: Tensor | Sequence[Tensor],
        labels: Tensor | Sequence[Tensor],
        iscrowd: Tensor | Sequence[Tensor] | None = None,
    ) -> None:
        """Ground truth of one image (boxes (N, 4) XYXY pixels) or one batch (see module doc)."""
        if self._coco_gt is not None:
            raise RuntimeError("this evaluator takes its ground truth from the dataset's COCO annotations")
        if iscrowd is None:
            iscrowd = (
                [torch.zeros(len(t)) for t in labels]
                if isinstance(labels, (list, tuple))
                else torch.zeros(labels.shape)
            )
        for image, (box, crowd, label) in _per_image(image_id, [boxes, iscrowd, labels]):
            keep = self._kept(label)
            self._gts[image] = (
                box.reshape(-1, 4)[keep],
                label.reshape(-1)[keep].astype(np.int64),
                crowd.reshape(-1)[keep] > 0,
            )
        self._result = None

    def add_detections(
        self,
        image_id: int | Sequence[int] | Tensor,
        boxes: Tensor | Sequence[Tensor],
        scores: Tensor | Sequence[Tensor],
        labels: Tensor | Sequence[Tensor],
    ) -> None:
        """Detections of one image (boxes (N, 4) XYXY pixels, scores (N,), labels (N,)) or one batch."""
        for image, (box, score, label) in _per_image(image_id, [boxes, scores, labels]):
            keep = self._kept(label)
            self._dets[image] = (
                box.reshape(-1, 4)[keep],
                score.reshape(-1)[keep],
                label.reshape(-1)[keep].astype(np.int64),
            )
        self._result = None

    def _kept(self, labels: np.ndarray) -> np.ndarray:
        """Rows to keep: label -1 marks padding (dropped); a label >= the class count is an error."""
        labels = labels.reshape(-1)
        if (labels >= len(self.class_names)).any():
            raise ValueError(f"label {int(labels.max())} out of range for {len(self.class_names)} classes")
        return labels >= 0

    def _gathered(self) -> tuple[dict, dict]:
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return self._gts, self._dets
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self._gts, self._dets))
        gts, dets = {}, {}
        for part_gts, part_dets in parts:
            gts.update(part_gts)
            dets.update(part_dets)
        return gts, dets

    def _gt_dict(self, gts: dict, image_ids: list[int]) -> dict:
        annotations = []
        for image in image_ids:
            boxes, labels, crowd = gts.get(image, (np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, bool)))
            for (x1, y1, x2, y2), label, is_crowd in zip(boxes.tolist(), labels.tolist(), crowd.tolist()):
                w, h = x2 - x1, y2 - y1
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image,
                        "category_id": self.category_ids[label],
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": int(is_crowd),
                    }
                )
        categories = [{"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names)]
        return {"images": [{"id": i} for i in image_ids], "annotations": annotations, "categories": categories}

    def _results(self, dets: dict) -> list[dict]:
        results = []
        for image, (boxes, scores, labels) in dets.items():
            for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
                results.append(
                    {
                        "image_id": image,
                        "category_id": self.category_ids[label],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score,
                    }
                )
        return results

    def _evaluate(self, gts: dict, dets: dict) -> dict:
        num_classes = len(self.class_names)
        empty = {
            "metrics": dict.fromkeys(METRIC_KEYS, 0.0),
            "stats": [0.0] * 12,
            "per_class": dict.fromkeys(self.class_names, float("nan")),
            "recall": np.linspace(0.0, 1.0, 101),
            "precision": np.full((num_classes, 101), np.nan),
        }
        if self._coco_gt is not None:
            gt, image_ids = self._coco_gt, sorted(dets)
        else:
            image_ids = sorted(set(gts) | set(dets))
            gt = self._gt_dict(gts, image_ids)
        results = self._results(dets)
        if not results or not gt.get("annotations"):
            return empty
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            missing = set(image_ids) - set(coco_gt.getImgIds())
            if missing:
                raise ValueError(f"detections for image ids not in the COCO ground truth: {sorted(missing)[:5]}")
            coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
            coco_eval.params.imgIds = image_ids
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        stats = [max(float(s), 0.0) for s in coco_eval.stats]
        precision = coco_eval.eval["precision"]  # (IoU T, recall R, class K, area A, maxDets M)
        cat_index = {c: k for k, c in enumerate(coco_eval.params.catIds)}
        per_class, curves = {}, np.full((num_classes, 101), np.nan)
        for name, cat in zip(self.class_names, self.category_ids):
            p = precision[:, :, cat_index[cat], 0, -1] if cat in cat_index else np.full((1, 1), -1.0)
            per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else float("nan")
            if cat in cat_index:
                curves[self.category_ids.index(cat)] = np.where(p[0] > -1, p[0], np.nan)
        return {
            "metrics": dict(zip(METRIC_KEYS, stats[:3])),
            "stats": stats,
            "per_class": per_class,
            "recall": np.asarray(coco_eval.params.recThrs, dtype=np.float64),
            "precision": curves,
        }

    def compute(self) -> dict[str, float]:
        """``{"mAP50_95", "mAP50", "mAP75"}`` (COCOeval stats[0:3], 100 detections per image)."""
        gts, dets = self._gathered()
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        result = [self._evaluate(gts, dets) if not distributed or dist.get_rank() == 0 else None]
        if distributed:
            dist.broadcast_object_list(result, src=0)
        self._result = result[0]
        return dict(self._result["metrics"])

    def _computed(self) -> dict:
        if self._result is None:
            self.compute()
        return self._result

    def coco_stats(self) -> list[float]:
        """The 12 numbers of ``COCOeval.summarize`` (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l)."""
        return list(self._computed()["stats"])

    def per_class_ap(self) -> dict[str, float]:
        """AP@[.50:.95] per class name (area all, 100 dets); NaN for a class without ground truth."""
        return dict(self._computed()["per_class"])

    def pr_curve(self) -> dict[str, np.ndarray]:
        """Precision at IoU 0.5 over COCO's 101 recall points: ``recall`` (101,),
        ``precision_per_class`` (K, 101) with NaN for classes without gt, ``precision`` (101,) their mean."""
        result = self._computed()
        per_class = result["precision"]
        has_gt = ~np.isnan(per_class).all(axis=1)
        mean = per_class[has_gt].mean(axis=0) if has_gt.any() else np.full(101, np.nan)
        return {"recall": result["recall"].copy(), "precision": mean, "precision_per_class": per_class.copy()}
