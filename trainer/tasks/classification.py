"""Classification: batches of images and class indices; top-1 / top-5 and a confusion matrix;
mixup / cutmix on the batch; the top-1 class drawn on validation and predicted images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from trainer.data.batch_mixing import BatchMixing, build_batch_mixing
from trainer.metrics.classification import ClassificationMetrics
from trainer.specs import AutoOptimizerDefaults
from trainer.tasks.base import Task
from trainer.tasks.drawing import Panels, draw_label, save_png
from trainer.tasks.predictions import PredictedImage, PredictionWriter

if TYPE_CHECKING:
    from trainer.recipe.schema import Recipe

RIGHT, WRONG = (80, 220, 80), (240, 80, 80)


class ClassificationEvaluator:
    def __init__(self, *, class_names: list[str], device: torch.device) -> None:
        self.class_names = class_names
        self.metrics = ClassificationMetrics(num_classes=len(class_names), device=device)

    def update(self, *, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        self.metrics.update(logits=outputs["logits"], labels=batch["labels"])

    def compute(self) -> dict[str, float]:
        return self.metrics.compute()

    def confusion_matrix(self) -> torch.Tensor:
        return self.metrics.confusion_matrix()


class ClassificationWriter(PredictionWriter):
    """`predictions.json` `[{file, image, top_k: [{class, score}]}]` and `images/<name>.png` (top-1 drawn)."""

    def add(self, items: list[PredictedImage], outputs: dict[str, torch.Tensor]) -> list[str]:
        probabilities = outputs["logits"].softmax(dim=1).cpu()
        scores, labels = probabilities.topk(min(self.top_k, probabilities.shape[1]), dim=1)
        lines = []
        for item, score, label in zip(items, scores.tolist(), labels.tolist()):
            drawn = self.image_path(item.name)
            save_png(draw_label(item.image, f"{self.names[label[0]]} {score[0]:.2f}"), drawn)
            self.records.append({
                "file": str(item.path), "image": self.relative(drawn),
                "top_k": [{"class": self.names[c], "score": round(s, 6)} for c, s in zip(label, score)],
            })
            lines.append(f"{item.path}: {self.names[label[0]]} ({score[0]:.3f})")
        return lines


class ClassificationTask(Task):
    name = "classification"
    metric_names = ("top1", "top5")
    auto_optimizer = AutoOptimizerDefaults(adamw=(2e-3, 0.01), sgd_per_image=(0.1 / 256, 1e-4),  # torchvision ResNet
                                           label="classification")
    # from scratch with AdamW 2e-3: shapes top1 0.32 without a warmup, 0.9975 with one epoch (docs/benchmarks.md)
    default_warmup_epochs: ClassVar[float] = 1.0
    default_best_metric = "top1"
    batch_fields = ("images", "labels")
    maps_back_to_image: ClassVar[bool] = False  # no geometry to map back (and some transforms reject boxes)

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "images": torch.stack([torch.as_tensor(sample["image"]) for sample in samples]),
            "labels": torch.tensor([int(sample["label"]) for sample in samples], dtype=torch.int64),
        }

    def build_evaluator(
        self, *, class_names: list[str], device: torch.device, postprocess: Any
    ) -> ClassificationEvaluator:
        return ClassificationEvaluator(class_names=class_names, device=device)

    def build_batch_mixing(self, *, recipe: Recipe, num_classes: int) -> BatchMixing | None:
        mix = recipe.augmentation.mix
        return build_batch_mixing(
            num_classes=num_classes, mixup_alpha=mix.mixup_alpha, cutmix_alpha=mix.cutmix_alpha, prob=mix.prob
        )

    def draw_panels(
        self, *, batch: dict[str, Any], outputs: dict[str, torch.Tensor], class_names: list[str], postprocess: Any
    ) -> Panels:
        """The top-1 class and score drawn (green when right, red when wrong), the true class as caption."""
        panels = Panels(columns=4)
        score, predicted = outputs["logits"].softmax(dim=1).cpu().max(dim=1)
        for image, truth, label, value in zip(batch["images"], batch["labels"].tolist(), predicted.tolist(),
                                              score.tolist()):
            colour = RIGHT if truth == label else WRONG
            panels.add(draw_label(image, f"{class_names[label]} {value:.2f}", colour=colour),
                       f"true: {class_names[truth]}")
        return panels

    def prediction_writer(
        self, *, out_dir: Path, class_names: list[str], postprocess: Any, top_k: int, draw_threshold: float
    ) -> ClassificationWriter:
        return ClassificationWriter(out_dir=out_dir, class_names=class_names, postprocess=postprocess, top_k=top_k,
                                    draw_threshold=draw_threshold)
