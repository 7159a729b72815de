"""What detection draws and writes: validation panels (predicted boxes over the true ones) and
`trainer predict`'s COCO-format results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainer.tasks.detection_postprocess import detections_from_outputs, postprocess_options
from trainer.tasks.drawing import DRAW_SCORE_THRESHOLD, Panels, display_scale, draw_boxes, draw_detections, save_png
from trainer.tasks.predictions import PredictedImage, PredictionWriter, boxes_to_original

TRUTH_COLOUR = (255, 255, 255)


def detection_panels(
    *, batch: dict[str, Any], outputs: dict[str, torch.Tensor], class_names: list[str], postprocess: Any
) -> Panels:
    """Predicted boxes with score >= DRAW_SCORE_THRESHOLD in colour, true boxes in white."""
    images = batch["images"]
    detections = detections_from_outputs(
        outputs, image_size=tuple(images.shape[-2:]), **postprocess_options(postprocess)
    )
    labels = batch.get("gt_eval_labels", batch["gt_labels"])
    panels = Panels(columns=4)
    for b, (image, found) in enumerate(zip(images, detections)):
        real = labels[b] >= 0
        truth = batch["gt_boxes"][b][real]
        with_truth = draw_boxes(image, truth, labels=None, colours=[TRUTH_COLOUR] * len(truth), width=1)
        scale = display_scale(*image.shape[-2:])
        drawn = draw_detections(with_truth, boxes=found["boxes"] * scale, scores=found["scores"],
                                labels=found["labels"], class_names=class_names)
        shown = int((found["scores"] >= DRAW_SCORE_THRESHOLD).sum())
        panels.add(drawn, f"{int(real.sum())} true (white), {shown} predicted")
    return panels


class DetectionWriter(PredictionWriter):
    """`predictions.json` in the COCO results format (`image_id`, `category_id` = class index, `bbox`
    [x, y, w, h] in the original image's pixels, `score`), `images.json` (`images`: id, file_name,
    width, height; `categories`: id, name) and `images/<name>.png` with boxes >= `draw_threshold`."""

    def __init__(self, *, out_dir: Path, class_names: list[str], postprocess: Any, top_k: int,
                 draw_threshold: float) -> None:
        super().__init__(out_dir=out_dir, class_names=class_names, postprocess=postprocess, top_k=top_k,
                         draw_threshold=draw_threshold)
        self.images: list[dict[str, Any]] = []

    def add(self, items: list[PredictedImage], outputs: dict[str, torch.Tensor]) -> list[str]:
        size = tuple(items[0].tensor.shape[-2:])
        detections = detections_from_outputs(outputs, image_size=size, **postprocess_options(self.postprocess))
        lines = []
        for item, found in zip(items, detections):
            height, width = item.image.shape[-2:]
            boxes = boxes_to_original(found["boxes"].cpu(), item.region, height, width)
            scores, labels = found["scores"].cpu(), found["labels"].cpu()
            drawn = self.image_path(item.name)
            save_png(draw_detections(item.image, boxes=boxes, scores=scores, labels=labels, class_names=self.names,
                                     score_threshold=self.draw_threshold), drawn)
            self.images.append({"id": item.index, "file_name": str(item.path), "width": int(width),
                                "height": int(height), "image": self.relative(drawn)})
            for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
                self.records.append({
                    "image_id": item.index, "category_id": int(label),
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "score": round(score, 5),
                })
            shown = int((scores >= self.draw_threshold).sum())
            lines.append(f"{item.path}: {len(scores)} detections, {shown} with score >= {self.draw_threshold}")
        return lines

    def finish(self) -> None:
        super().finish()
        categories = [{"id": index, "name": name} for index, name in enumerate(self.names)]
        self.write_json("images.json", {"images": self.images, "categories": categories})
