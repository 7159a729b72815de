"""Semantic segmentation: batches of images and (B, H, W) class maps; mIoU, pixel accuracy,
per-class IoU and a pixel confusion matrix.

- Ignored pixels carry `IGNORE_INDEX` (255) everywhere in the pipeline: data sets map their void
  value to it, crops pad masks with it, the metrics skip it. The task also hands it to every loss
  that takes an `ignore_index` option and whose recipe entry leaves it out (`loss_defaults`), so a
  `cross_entropy` / `focal_loss` entry needs no `ignore_index: 255`; an entry that sets another
  value is a recipe error (`trainer/recipe/validate.py`).
- Logits at another resolution than the labels (PIDNet in training mode, a head without its own
  upsampling) are upsampled bilinearly to the label size before the argmax, in the evaluator and
  in `predict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from rich.table import Table

from trainer.data.errors import DataError
from trainer.metrics.segmentation import SegmentationMetrics

IGNORE_INDEX = 255


def _plain(value: Any) -> torch.Tensor:
    """A tv_tensors Image / Mask (or anything tensor-like) as a plain tensor."""
    tensor = torch.as_tensor(value)
    return tensor.as_subclass(torch.Tensor) if type(tensor) is not torch.Tensor else tensor


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, H, W), bilinear (``align_corners=False``); unchanged when already H x W."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


class SegmentationEvaluator:
    """Feeds `SegmentationMetrics` with the model's `logits` and the batch's `labels`."""

    def __init__(self, *, class_names: list[str], device: torch.device, ignore_index: int = IGNORE_INDEX) -> None:
        self.class_names = list(class_names)
        self.metrics = SegmentationMetrics(num_classes=len(class_names), ignore_index=ignore_index, device=device)

    def update(self, *, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        labels = batch["labels"]
        self.metrics.update(logits=upsample_logits(outputs["logits"], tuple(labels.shape[-2:])), labels=labels)

    def compute(self) -> dict[str, float]:
        return self.metrics.compute()

    def per_class_iou(self) -> dict[str, float]:
        """IoU per class name; NaN for a class in neither the ground truth nor the predictions."""
        return dict(zip(self.class_names, self.metrics.per_class_iou().tolist()))

    def confusion_matrix(self) -> torch.Tensor:
        """(C, C) pixel counts, row = ground truth, column = prediction (summed over ranks)."""
        return self.metrics.confusion_matrix()


class SegmentationTask:
    name = "segmentation"
    metric_names = ("mIoU", "pixel_acc")
    default_best_metric = "mIoU"
    batch_fields = ("images", "labels")
    ignore_index = IGNORE_INDEX
    # filled into the loss entries that accept these options and leave them out (losses/module.py)
    loss_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({"ignore_index": IGNORE_INDEX})

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        images = [_plain(sample["image"]) for sample in samples]
        masks = [_plain(sample["mask"]) for sample in samples]
        sizes = sorted({tuple(image.shape[-2:]) for image in images})
        if len(sizes) > 1:
            raise DataError(
                f"segmentation batch holds images of different sizes {sizes[:4]}: end augmentation.train and "
                "augmentation.val with a fixed-size transform (e.g. {name: random_crop, size: 512, "
                "pad_if_needed: true} or {name: resize, size: [512, 1024]}), or use batch_size 1"
            )
        for sample, image, mask in zip(samples, images, masks):
            if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
                raise DataError(
                    f"segmentation sample {sample.get('image_id', '?')}: mask {tuple(mask.shape)} and image "
                    f"{tuple(image.shape)} differ in size"
                )
        return {
            "images": torch.stack(images),
            "labels": torch.stack([mask.reshape(mask.shape[-2:]).to(torch.int64) for mask in masks]),
            "image_ids": torch.tensor([int(sample.get("image_id", i)) for i, sample in enumerate(samples)]),
        }

    def build_evaluator(
        self, *, class_names: list[str], device: torch.device, postprocess: Any
    ) -> SegmentationEvaluator:
        return SegmentationEvaluator(class_names=class_names, device=device, ignore_index=self.ignore_index)

    def predict(
        self, *, outputs: dict[str, torch.Tensor], image_size: tuple[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """Per image: `mask` (H, W) int64 class indices (argmax) at `image_size` (default: the logits'
        size, which is the input size for every shipped model) and `classes` {index: pixel fraction}."""
        logits = outputs["logits"]
        if image_size is not None:
            logits = upsample_logits(logits, tuple(image_size))
        masks = logits.argmax(dim=1).cpu()
        results = []
        for mask in masks:
            counts = torch.bincount(mask.flatten(), minlength=logits.shape[1])
            total = max(mask.numel(), 1)
            classes = {c: int(n) / total for c, n in enumerate(counts.tolist()) if n}
            results.append({"mask": mask, "classes": classes})
        return results

    def report(self, evaluator: SegmentationEvaluator) -> Table | None:
        """Per-class IoU (and the share of ground-truth pixels) as a table, for `trainer eval`."""
        iou = getattr(evaluator, "per_class_iou", None)
        if iou is None:
            return None
        values = iou()
        confusion = evaluator.confusion_matrix().cpu()
        gt_pixels = confusion.sum(dim=1)
        total = max(int(gt_pixels.sum()), 1)
        table = Table(title="per-class IoU")
        table.add_column("class")
        table.add_column("IoU", justify="right")
        table.add_column("gt pixels", justify="right")
        for index, (name, value) in enumerate(values.items()):
            shown = "-" if math.isnan(value) else f"{value:.4f}"  # NaN: in neither gt nor predictions
            table.add_row(name, shown, f"{int(gt_pixels[index]) / total:.1%}")
        return table
