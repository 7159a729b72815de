"""Classification: batches of images and class indices; top-1 / top-5 and a confusion matrix."""

from __future__ import annotations

from typing import Any

import torch

from trainer.metrics.classification import ClassificationMetrics


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


class ClassificationTask:
    name = "classification"
    metric_names = ("top1", "top5")
    default_best_metric = "top1"
    batch_fields = ("images", "labels")

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "images": torch.stack([torch.as_tensor(sample["image"]) for sample in samples]),
            "labels": torch.tensor([int(sample["label"]) for sample in samples], dtype=torch.int64),
        }

    def build_evaluator(
        self, *, class_names: list[str], device: torch.device, postprocess: Any
    ) -> ClassificationEvaluator:
        return ClassificationEvaluator(class_names=class_names, device=device)

    def predict(self, *, outputs: dict[str, torch.Tensor], top_k: int = 5) -> list[dict[str, Any]]:
        probabilities = outputs["logits"].float().softmax(dim=1)
        scores, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        return [{"scores": s.tolist(), "labels": i.tolist()} for s, i in zip(scores.cpu(), indices.cpu())]
