"""`coco`: detection data from a COCO instances JSON and a folder of images.

- The JSON is checked by structure (`coco_parse`): a bad entry is an error naming it
  (`instances.json: annotations[17].bbox: expected 4 numbers, got "x"`), all of them together.
- Category ids map to contiguous class indices in order of id (`class_names` = category names),
  or, when `class_names` is given (a list or a class list file), to the index of each category's
  name in that list.
- `bbox` [x, y, w, h] becomes XYXY pixels; boxes reaching outside the image are clipped to it and
  boxes with no area left are dropped, with one `DataWarning` per data set giving the counts.
- Crowd annotations are kept with `iscrowd` True (the trainer drops them from training targets).
- Images with no annotations are valid samples with zero boxes.
- `image_id` in a sample is the image's id in the JSON; `coco_gt()` returns the JSON's own
  annotations (boxes untouched, so mAP equals pycocotools on the source file) with
  `category_id` = contiguous class index, for the evaluator.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from trainer.data.class_names import resolve_class_names
from trainer.data.coco_parse import CocoAnnotation, load_coco
from trainer.data.errors import DataError, DataWarning
from trainer.data.image_folder import read_rgb_image
from trainer.registry import DATASETS


def clip_boxes(boxes: np.ndarray, *, width: float, height: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Clip XYXY boxes (N, 4) to the image; return (clipped boxes, keep mask, number changed and kept)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(boxes).all(axis=1)
    clipped = boxes.copy()
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0.0, width)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0.0, height)
    keep = finite & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    changed = keep & (np.abs(clipped - boxes) > 1e-6).any(axis=1)
    return clipped.astype(np.float32), keep, int(changed.sum())


def warn_repaired(*, source: str, clipped: int, dropped: int) -> None:
    """The one warning per data set about boxes that were clipped or dropped."""
    if clipped or dropped:
        warnings.warn(
            f"{source}: {clipped} box(es) reaching outside their image were clipped to it; "
            f"{dropped} box(es) with no area inside the image were dropped",
            DataWarning,
            stacklevel=3,
        )


def build_coco_gt(
    *,
    images: list[dict],
    boxes_xyxy: list[np.ndarray],
    labels: list[np.ndarray],
    iscrowd: list[np.ndarray],
    class_names: list[str],
) -> dict:
    """A COCO ground-truth dict from per-image XYXY pixel boxes (annotation ids 1..N, never 0)."""
    annotations = []
    for image, boxes, image_labels, crowd in zip(images, boxes_xyxy, labels, iscrowd):
        for box, label, is_crowd in zip(np.asarray(boxes).reshape(-1, 4), image_labels, crowd):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(bool(is_crowd)),
                }
            )
    categories = [{"id": index, "name": name} for index, name in enumerate(class_names)]
    return {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}


def _targets(images: list[dict], annotations: list[CocoAnnotation], *, source: str) -> tuple[list, list, list]:
    """Per image: XYXY boxes clipped to the image (boxes with no area left dropped), labels, crowd flags."""
    per_image: list[list[CocoAnnotation]] = [[] for _ in images]
    for annotation in annotations:
        per_image[annotation.image_index].append(annotation)
    all_boxes, all_labels, all_crowd = [], [], []
    clipped_total = dropped_total = 0
    for image, entries in zip(images, per_image):
        xywh = np.array([e.bbox for e in entries], dtype=np.float64).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes, keep, clipped = clip_boxes(xyxy, width=image["width"], height=image["height"])
        clipped_total += clipped
        dropped_total += int((~keep).sum())
        all_boxes.append(boxes[keep])
        all_labels.append(np.array([e.label for e in entries], dtype=np.int64)[keep])
        all_crowd.append(np.array([e.iscrowd for e in entries], dtype=bool)[keep])
    warn_repaired(source=source, clipped=clipped_total, dropped=dropped_total)
    return all_boxes, all_labels, all_crowd


@DATASETS.register("coco", tasks=("detection",))
class CocoDataset(torch.utils.data.Dataset):
    """COCO instances JSON + images folder; detection samples."""

    def __init__(
        self, *, task: str, split: str, images_dir: str, annotations: str, class_names: list[str] | str | None = None
    ) -> None:
        if task != "detection":
            raise DataError(f"coco: holds detection data, not '{task}'")
        self.task, self.split = task, split
        self.images_dir = Path(images_dir)
        self.annotations_file = Path(annotations)
        if not self.annotations_file.exists():
            raise DataError(f"coco: annotation file not found: {self.annotations_file}")
        content = load_coco(self.annotations_file, class_names=resolve_class_names(class_names))
        if not self.images_dir.is_dir():
            raise DataError(f"coco: images directory not found: {self.images_dir}")
        self.class_names: list[str] = content.class_names
        self.images: list[dict] = content.images
        if not self.images:
            raise DataError(f"coco: {self.annotations_file}: images: the list is empty")
        missing = [image["file_name"] for image in self.images if not (self.images_dir / image["file_name"]).is_file()]
        if missing:
            raise DataError(
                f"coco: {len(missing)} image file(s) listed in {self.annotations_file} are missing from "
                f"{self.images_dir}, e.g. {missing[:3]}"
            )
        # (image id, label, original bbox, area, iscrowd) for coco_gt
        self._raw = [(self.images[a.image_index]["id"], a.label, a.bbox, a.area, a.iscrowd)
                     for a in content.annotations]
        self._boxes, self._labels, self._crowd = _targets(self.images, content.annotations,
                                                          source=f"coco: {self.annotations_file}")

    def image_sizes(self) -> Iterator[tuple[str, int, int]]:
        """(file, height, width) of every image, from the JSON."""
        return ((image["file_name"], image["height"], image["width"]) for image in self.images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        info = self.images[index]
        path = self.images_dir / info["file_name"]
        image = read_rgb_image(path)
        height, width = image.shape[-2:]
        if (height, width) != (info["height"], info["width"]):
            raise DataError(
                f"coco: {path} is {width}x{height} pixels but {self.annotations_file} "
                f"says {info['width']}x{info['height']}"
            )
        return {
            "image": image,
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(self._boxes[index]), format="XYXY", canvas_size=(height, width)
            ),
            "labels": torch.from_numpy(self._labels[index]),
            "iscrowd": torch.from_numpy(self._crowd[index]),
            "image_id": int(info["id"]),
        }

    def coco_gt(self) -> dict:
        """The source annotations as a COCO dict; category_id = contiguous class index, ids 1..N."""
        annotations = [
            {
                "id": number,
                "image_id": image_id,
                "category_id": label,
                "bbox": bbox,
                "area": area,
                "iscrowd": int(crowd),
            }
            for number, (image_id, label, bbox, area, crowd) in enumerate(self._raw, start=1)
        ]
        categories = [{"id": index, "name": name} for index, name in enumerate(self.class_names)]
        images = [dict(image) for image in self.images]
        return {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
