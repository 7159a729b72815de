"""Semantic segmentation: batches of images and (B, H, W) class maps; mIoU, pixel accuracy,
per-class IoU and a pixel confusion matrix; masks drawn on validation and predicted images.

- Ignored pixels carry `IGNORE_INDEX` (255) everywhere in the pipeline: data sets map their void
  value to it, crops pad masks with it, the metrics skip it. The task also hands it to every loss
  that takes an `ignore_index` option and whose recipe entry leaves it out (`loss_defaults`), so a
  `cross_entropy` / `focal_loss` entry needs no `ignore_index: 255`; an entry that sets another
  value is a recipe error (`trainer/recipe/validate.py`).
- Logits at another resolution than the labels (PIDNet in training mode, a head without its own
  upsampling) are upsampled bilinearly to the label size (`trainer.ops.upsample_logits`) before
  the argmax, in the evaluator, the validation panels and `predict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from rich.table import Table

from trainer.constants import IGNORE_INDEX
from trainer.data.edge_target import boundary_labels_batch
from trainer.data.errors import DataError
from trainer.metrics.segmentation import SegmentationMetrics
from trainer.ops import upsample_logits
from trainer.specs import AutoOptimizerDefaults
from trainer.tasks.base import Task
from trainer.tasks.drawing import Panels, colour_mask, display_scale, draw_mask, enlarge, palette, save_png
from trainer.tasks.predictions import PredictedImage, PredictionWriter, mask_to_original

IGNORED_COLOUR = (128, 128, 128)


def _plain(value: Any) -> torch.Tensor:
    """A tv_tensors Image / Mask (or anything tensor-like) as a plain tensor."""
    tensor = torch.as_tensor(value)
    return tensor.as_subclass(torch.Tensor) if type(tensor) is not torch.Tensor else tensor


def predicted_masks(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) logits -> (B, H, W) int64 class indices at `size`, on the CPU."""
    return upsample_logits(logits.float(), size).argmax(dim=1).cpu()


class SegmentationEvaluator:
    """Feeds `SegmentationMetrics` with the model's `logits` and the batch's `labels`."""

    def __init__(self, *, class_names: list[str], device: torch.device, ignore_index: int = IGNORE_INDEX) -> None:
        self.class_names = list(class_names)
        self.metrics = SegmentationMetrics(num_classes=len(class_names), ignore_index=ignore_index, device=device)

    def update(self, *, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        labels = batch["labels"]
        self.metrics.update(logits=upsample_logits(outputs["logits"].float(), tuple(labels.shape[-2:])), labels=labels)

    def compute(self) -> dict[str, float]:
        return self.metrics.compute()

    def per_class_iou(self) -> dict[str, float]:
        """IoU per class name; NaN for a class in neither the ground truth nor the predictions."""
        return dict(zip(self.class_names, self.metrics.per_class_iou().tolist()))

    def confusion_matrix(self) -> torch.Tensor:
        """(C, C) pixel counts, row = ground truth, column = prediction (summed over ranks)."""
        return self.metrics.confusion_matrix()


class SegmentationWriter(PredictionWriter):
    """`masks/<name>.png` (8-bit class indices at the original size, nearest; 255 where the val
    transforms cropped the image away), `images/<name>.png` (colour overlay) and `predictions.json`
    `[{file, mask, image, classes: {class: fraction of pixels}}]`."""

    def add(self, items: list[PredictedImage], outputs: dict[str, torch.Tensor]) -> list[str]:
        lines = []
        for item, mask in zip(items, predicted_masks(outputs["logits"], tuple(items[0].tensor.shape[-2:]))):
            height, width = item.image.shape[-2:]
            original = mask_to_original(mask, item.region, height, width)
            mask_file, drawn = self.image_path(item.name, "masks"), self.image_path(item.name)
            save_png(original.to(torch.uint8), mask_file)
            save_png(draw_mask(item.image, original, class_names=self.names), drawn)
            counts = torch.bincount(original.flatten(), minlength=IGNORE_INDEX + 1)[: len(self.names)]
            total = max(int(height * width), 1)
            classes = {self.names[c]: round(int(n) / total, 5) for c, n in enumerate(counts.tolist()) if n}
            self.records.append({"file": str(item.path), "mask": self.relative(mask_file),
                                 "image": self.relative(drawn), "classes": classes})
            lines.append(f"{item.path}: " + ", ".join(f"{k} {v:.0%}" for k, v in classes.items()))
        return lines


class SegmentationTask(Task):
    name = "segmentation"
    metric_names = ("mIoU", "pixel_acc")
    auto_optimizer = AutoOptimizerDefaults(adamw=(2e-3, 1e-4), sgd_per_image=(0.01 / 16, 5e-4),  # PIDNet / HRNet
                                           label="segmentation")
    default_best_metric = "mIoU"
    batch_fields = ("images", "labels")
    ignore_index = IGNORE_INDEX
    loss_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({"ignore_index": IGNORE_INDEX})
    panel_images: ClassVar[int] = 4  # three panels each: image | true mask | predicted mask

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
        batch = {
            "images": torch.stack(images),
            "labels": torch.stack([mask.reshape(mask.shape[-2:]).to(torch.int64) for mask in masks]),
            "image_ids": torch.tensor([int(sample.get("image_id", i)) for i, sample in enumerate(samples)]),
        }
        boundary = boundary_labels_batch(samples)  # the `boundary_target` data step's output, if any
        if boundary is not None:
            batch["boundary_labels"] = boundary
        return batch

    def build_evaluator(
        self, *, class_names: list[str], device: torch.device, postprocess: Any
    ) -> SegmentationEvaluator:
        return SegmentationEvaluator(class_names=class_names, device=device, ignore_index=self.ignore_index)

    def draw_panels(
        self, *, batch: dict[str, Any], outputs: dict[str, torch.Tensor], class_names: list[str], postprocess: Any
    ) -> Panels:
        """image | true mask | predicted mask per image, with a colour legend."""
        images = batch["images"]
        panels = Panels(columns=3)
        for image, truth, mask in zip(images, batch["labels"], predicted_masks(outputs["logits"], images.shape[-2:])):
            panels.add(enlarge(image.cpu(), display_scale(*image.shape[-2:])), "image")
            panels.add(colour_mask(truth, class_names), "true mask")
            panels.add(colour_mask(mask, class_names), "predicted mask")
        colours = palette(len(class_names))
        panels.legend = [(name, (0, 0, 0) if name.lower() == "background" else colours[index])
                         for index, name in enumerate(class_names)] + [("ignored", IGNORED_COLOUR)]
        return panels

    def prediction_writer(
        self, *, out_dir: Path, class_names: list[str], postprocess: Any, top_k: int, draw_threshold: float
    ) -> SegmentationWriter:
        return SegmentationWriter(out_dir=out_dir, class_names=class_names, postprocess=postprocess, top_k=top_k,
                                  draw_threshold=draw_threshold)

    def report(self, evaluator: SegmentationEvaluator) -> Table | None:
        """Per-class IoU (and the share of ground-truth pixels) as a table, for `trainer eval`."""
        values = evaluator.per_class_iou()
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
