"""Detection: padded box batches, decoding + NMS, COCO mAP (pycocotools) and per-class AP.

Batch (from `collate`): `images` (B, 3, H, W) uint8, `gt_boxes` (B, M, 4) float32 XYXY input
pixels, `gt_labels` (B, M) int64 with -1 on padding rows *and on crowd boxes* (the copy the
losses read, so they never learn from crowd regions), `gt_iscrowd` (B, M) bool, `gt_eval_labels`
(B, M) int64 (-1 on padding only: the class of every real box, crowd included, for COCO
evaluation), `image_ids` (B,) int64.

Evaluation runs on the batch's own ground truth, in input pixels (after the val transforms), with
crowd flags kept, so any data format works. For letterbox/resize transforms this gives the same
mAP50_95 / mAP50 / mAP75 as the source annotations would (IoU is invariant to axis scaling).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from rich.table import Table

from trainer.data.errors import DataError
from trainer.metrics.detection import METRIC_KEYS, CocoEvaluator
from trainer.specs import AutoOptimizerDefaults
from trainer.tasks.base import Task
from trainer.tasks.detection_mosaic import wrap_mosaic
from trainer.tasks.detection_outputs import DetectionWriter, detection_panels
from trainer.tasks.detection_postprocess import detections_from_outputs, postprocess_options
from trainer.tasks.drawing import Panels

if TYPE_CHECKING:
    from trainer.recipe.schema import Recipe


class DetectionEvaluator:
    """Decodes each batch and feeds `CocoEvaluator`; `compute()` gives mAP50_95, mAP50, mAP75."""

    def __init__(self, *, class_names: list[str], device: torch.device, postprocess: Any) -> None:
        self.class_names = list(class_names)
        self.device = device
        self.options = postprocess_options(postprocess)
        self.coco = CocoEvaluator(class_names=self.class_names)

    def update(self, *, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        images = batch["images"]
        detections = detections_from_outputs(
            outputs, image_size=(int(images.shape[-2]), int(images.shape[-1])), **self.options
        )
        image_ids = batch["image_ids"]
        eval_labels = batch.get("gt_eval_labels", batch["gt_labels"])
        self.coco.add_ground_truth(image_ids, batch["gt_boxes"], eval_labels, batch["gt_iscrowd"])
        self.coco.add_detections(
            image_ids,
            [d["boxes"] for d in detections],
            [d["scores"] for d in detections],
            [d["labels"] for d in detections],
        )

    def compute(self) -> dict[str, float]:
        return self.coco.compute()

    def per_class_ap(self) -> dict[str, float]:
        """AP@[.50:.95] per class name; NaN for a class without ground truth."""
        return self.coco.per_class_ap()

    def pr_curve(self) -> dict[str, Any]:
        """Precision at IoU 0.5 over COCO's 101 recall points (see CocoEvaluator.pr_curve)."""
        return self.coco.pr_curve()

    def coco_stats(self) -> list[float]:
        return self.coco.coco_stats()


def _stack_images(samples: list[dict[str, Any]]) -> torch.Tensor:
    images = [torch.as_tensor(sample["image"]) for sample in samples]
    sizes = sorted({tuple(image.shape) for image in images})
    if len(sizes) > 1:
        shown = ", ".join("x".join(str(v) for v in size) for size in sizes[:4])
        raise DataError(
            f"detection: images in a batch differ in size after the transforms ({shown}); add a transform that "
            "gives every image the same size at the end of augmentation.train and augmentation.val, e.g. "
            "{name: letterbox, size: 640} or {name: resize, size: [640, 640]}"
        )
    return torch.stack(images)


class DetectionTask(Task):
    name = "detection"
    metric_names = METRIC_KEYS
    auto_optimizer = AutoOptimizerDefaults(adamw=(3e-3, 0.05), sgd_per_image=(0.01 / 64, 5e-4),  # YOLOX, Ultralytics
                                           label="detection")
    default_best_metric = "mAP50_95"
    batch_fields = ("images", "gt_boxes", "gt_labels", "gt_iscrowd", "image_ids")
    has_boxes: ClassVar[bool] = True

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch_size = len(samples)
        count = max((len(sample["labels"]) for sample in samples), default=0)
        boxes = torch.zeros((batch_size, count, 4), dtype=torch.float32)
        labels = torch.full((batch_size, count), -1, dtype=torch.int64)
        crowd = torch.zeros((batch_size, count), dtype=torch.bool)
        for b, sample in enumerate(samples):
            n = len(sample["labels"])
            if n == 0:
                continue
            boxes[b, :n] = torch.as_tensor(sample["boxes"]).reshape(-1, 4).float()
            labels[b, :n] = torch.as_tensor(sample["labels"]).to(torch.int64)
            if sample.get("iscrowd") is not None:
                crowd[b, :n] = torch.as_tensor(sample["iscrowd"]).to(torch.bool)
        return {
            "images": _stack_images(samples),
            "gt_boxes": boxes,
            "gt_labels": labels.masked_fill(crowd, -1),
            "gt_iscrowd": crowd,
            "gt_eval_labels": labels,
            "image_ids": torch.tensor([int(sample["image_id"]) for sample in samples], dtype=torch.int64),
        }

    def build_evaluator(self, *, class_names: list[str], device: torch.device, postprocess: Any) -> DetectionEvaluator:
        return DetectionEvaluator(class_names=class_names, device=device, postprocess=postprocess)

    def report(self, evaluator: DetectionEvaluator) -> Table | None:
        """Per-class AP table (AP@[.50:.95] and AP50 at 100 detections) for `trainer eval`."""
        per_class = evaluator.per_class_ap()
        curves = evaluator.pr_curve()["precision_per_class"]
        table = Table(title="per-class AP")
        table.add_column("class")
        table.add_column("AP50_95", justify="right")
        table.add_column("AP50", justify="right")
        for index, name in enumerate(evaluator.class_names):
            ap = per_class.get(name, float("nan"))
            row = curves[index]
            ap50 = float(np.nanmean(row)) if not np.isnan(row).all() else float("nan")  # COCO 101-point AP50
            table.add_row(name, _fmt(ap), _fmt(ap50))
        return table

    def wrap_train_dataset(self, dataset: Any, *, recipe: Recipe) -> tuple[Any, Any]:
        return wrap_mosaic(dataset, recipe=recipe)

    def draw_panels(
        self, *, batch: dict[str, Any], outputs: dict[str, torch.Tensor], class_names: list[str], postprocess: Any
    ) -> Panels:
        return detection_panels(batch=batch, outputs=outputs, class_names=class_names, postprocess=postprocess)

    def prediction_writer(
        self, *, out_dir: Path, class_names: list[str], postprocess: Any, top_k: int, draw_threshold: float
    ) -> DetectionWriter:
        return DetectionWriter(out_dir=out_dir, class_names=class_names, postprocess=postprocess, top_k=top_k,
                               draw_threshold=draw_threshold)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"
