"""Semantic segmentation metrics: mIoU and pixel accuracy from a confusion matrix.

Definitions (those of mmsegmentation's ``IoUMetric``):

- confusion matrix over non-ignored pixels: row = ground truth, column = prediction;
- IoU_c = TP_c / (TP_c + FP_c + FN_c);
- ``mIoU`` = mean of IoU_c over the classes whose union (TP + FP + FN) is > 0, i.e. that occur in
  the ground truth or in the predictions (``nanmean``); a class that is never in the ground truth
  but is predicted counts with IoU 0; a class absent from both is left out.  0.0 if no class
  qualifies (nothing counted);
- ``pixel_acc`` = sum TP / number of non-ignored pixels (mmseg's ``aAcc``).

Pixels whose label is ``ignore_index`` (or outside [0, C)) are not counted.  Logits at a lower
resolution than the labels are upsampled bilinearly (``align_corners=False``) before the argmax.
Counts live on the device (``scatter_add_``, no host sync in ``update``) and are summed over
ranks with ``torch.distributed.all_reduce`` in ``compute``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.constants import IGNORE_INDEX
from trainer.metrics.classification import all_reduce_sum
from trainer.ops import upsample_logits


class SegmentationMetrics:
    """Accumulates a pixel confusion matrix; ``compute()`` gives ``{"mIoU", "pixel_acc"}``."""

    def __init__(
        self, *, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu"
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        # one extra bin collects ignored pixels; dropped when read
        self._confusion = torch.zeros(self.num_classes**2 + 1, dtype=torch.int64, device=self.device)

    @torch.no_grad()
    def update(self, *, labels: Tensor, logits: Tensor | None = None, preds: Tensor | None = None) -> None:
        """Adds a batch: ``labels`` (B, H, W) and either ``logits`` (B, C, h, w) or ``preds`` (B, H, W)."""
        if (logits is None) == (preds is None):
            raise ValueError("SegmentationMetrics.update needs exactly one of logits= or preds=")
        labels = labels.detach().to(self.device).long()
        if logits is not None:
            logits = logits.detach().to(self.device)
            if tuple(logits.shape[-2:]) != tuple(labels.shape[-2:]):
                logits = upsample_logits(logits.float(), tuple(labels.shape[-2:]))
            preds = logits.argmax(dim=1)
        preds = preds.detach().to(self.device).long()
        if preds.shape != labels.shape:
            raise ValueError(f"predictions {tuple(preds.shape)} and labels {tuple(labels.shape)} differ in shape")
        num_classes = self.num_classes
        valid = (labels != self.ignore_index) & (labels >= 0) & (labels < num_classes)
        index = torch.where(valid, labels * num_classes + preds, num_classes * num_classes).flatten()
        self._confusion.scatter_add_(0, index, torch.ones_like(index))

    def sync(self) -> Tensor:
        """(C, C) confusion matrix summed over ranks (a copy; the local state is unchanged)."""
        return all_reduce_sum([self._confusion])[0][:-1].view(self.num_classes, self.num_classes)

    def confusion_matrix(self) -> Tensor:
        """(C, C) int64 pixel counts over all ranks: row = ground truth, column = prediction."""
        return self.sync()

    @staticmethod
    def iou_from_confusion(confusion: Tensor) -> Tensor:
        """Per-class IoU (float64), NaN where the class is in neither ground truth nor predictions."""
        confusion = confusion.double()
        tp = confusion.diag()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - tp
        return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))

    def per_class_iou(self) -> Tensor:
        """(C,) float64 IoU per class on the CPU; NaN for classes with union 0."""
        return self.iou_from_confusion(self.sync().cpu())

    def compute(self) -> dict[str, float]:
        confusion = self.sync().cpu()
        iou = self.iou_from_confusion(confusion)
        present = ~torch.isnan(iou)
        miou = float(iou[present].mean()) if bool(present.any()) else 0.0
        total = int(confusion.sum())
        pixel_acc = float(confusion.diag().sum()) / total if total > 0 else 0.0
        return {"mIoU": miou, "pixel_acc": pixel_acc}
