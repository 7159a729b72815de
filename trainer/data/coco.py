"""`coco`: detection data from a COCO instances JSON and a folder of images.

- Category ids map to contiguous class indices in order of id (`class_names` = category names),
  or, when `class_names` is given, to the index of each category's name in that list.
- `bbox` [x, y, w, h] becomes XYXY pixels; boxes reaching outside the image are clipped to it and
  boxes with no area left are dropped, with one `DataWarning` per data set giving the counts.
- Crowd annotations are kept with `iscrowd` True (the trainer drops them from training targets).
- Images with no annotations are valid samples with zero boxes.
- `image_id` in a sample is the image's id in the JSON; `coco_gt()` returns the JSON's own
  annotations (boxes untouched, so mAP equals pycocotools on the source file) with
  `category_id` = contiguous class index, for the evaluator.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

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


def load_json(path: Path, *, kind: str) -> dict:
    if not path.is_file():
        raise DataError(f"{kind}: annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"{kind}: {path}:{error.lineno}: invalid JSON: {error.msg}") from error
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        raise DataError(f"{kind}: {path}: not a COCO instances file (needs 'images' and 'categories' lists)")
    return data


@DATASETS.register("coco", tasks=("detection",))
class CocoDataset(torch.utils.data.Dataset):
    """COCO instances JSON + images folder; detection samples."""

    def __init__(
        self, *, task: str, split: str, images_dir: str, annotations: str, class_names: list[str] | None = None
    ) -> None:
        if task != "detection":
            raise DataError(f"coco: holds detection data, not '{task}'")
        path = Path(annotations)
        data = load_json(path, kind="coco")
        self.task, self.split = task, split
        self.images_dir = Path(images_dir)
        self.annotations_file = path
        if not self.images_dir.is_dir():
            raise DataError(f"coco: images directory not found: {self.images_dir}")

        categories = sorted(data["categories"], key=lambda category: category["id"])
        if class_names is None:
            self.class_names: list[str] = [str(category["name"]) for category in categories]
            category_to_label = {category["id"]: index for index, category in enumerate(categories)}
        else:
            self.class_names = [str(name) for name in class_names]
            category_to_label = {}
            for category in categories:
                if category["name"] not in self.class_names:
                    raise DataError(
                        f"coco: {path}: category {category['id']} '{category['name']}' "
                        f"is not in class_names {self.class_names}"
                    )
                category_to_label[category["id"]] = self.class_names.index(category["name"])

        self.images: list[dict] = []
        index_of: dict[int, int] = {}
        missing = []
        for image in data["images"]:
            if not all(key in image for key in ("id", "file_name", "width", "height")):
                raise DataError(
                    f"coco: {path}: image entry {image.get('id', '?')} needs id, file_name, width and height"
                )
            if image["id"] in index_of:
                raise DataError(f"coco: {path}: duplicate image id {image['id']}")
            index_of[image["id"]] = len(self.images)
            self.images.append({key: image[key] for key in ("id", "file_name", "width", "height")})
            if not (self.images_dir / image["file_name"]).is_file():
                missing.append(image["file_name"])
        if missing:
            raise DataError(
                f"coco: {len(missing)} image file(s) listed in {path} are missing from {self.images_dir}, "
                f"e.g. {missing[:3]}"
            )
        if not self.images:
            raise DataError(f"coco: {path} lists no images")

        per_image: list[list] = [[] for _ in self.images]
        self._raw: list[tuple] = []  # (image id, label, original bbox, area, iscrowd) for coco_gt
        for ann in data.get("annotations", []):
            ann_id = ann.get("id", "?")
            if ann.get("category_id") not in category_to_label:
                raise DataError(
                    f"coco: {path}: annotation {ann_id} has category_id {ann.get('category_id')!r}, "
                    "which is not in 'categories'"
                )
            if ann.get("image_id") not in index_of:
                raise DataError(
                    f"coco: {path}: annotation {ann_id} has image_id {ann.get('image_id')!r}, which is not in 'images'"
                )
            bbox = ann.get("bbox")
            if (
                not isinstance(bbox, (list, tuple))
                or len(bbox) != 4
                or not all(isinstance(v, (int, float)) for v in bbox)
            ):
                raise DataError(f"coco: {path}: annotation {ann_id} needs a bbox [x, y, w, h], got {bbox!r}")
            label, crowd = category_to_label[ann["category_id"]], bool(ann.get("iscrowd", 0))
            per_image[index_of[ann["image_id"]]].append((bbox, label, crowd))
            area = float(ann.get("area", float(bbox[2]) * float(bbox[3])))
            self._raw.append((ann["image_id"], label, [float(v) for v in bbox], area, crowd))

        self._boxes, self._labels, self._crowd = [], [], []
        clipped_total = dropped_total = 0
        for image, entries in zip(self.images, per_image):
            xywh = np.array([e[0] for e in entries], dtype=np.float64).reshape(-1, 4)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            boxes, keep, clipped = clip_boxes(xyxy, width=image["width"], height=image["height"])
            clipped_total += clipped
            dropped_total += int((~keep).sum())
            self._boxes.append(boxes[keep])
            self._labels.append(np.array([e[1] for e in entries], dtype=np.int64)[keep])
            self._crowd.append(np.array([e[2] for e in entries], dtype=bool)[keep])
        warn_repaired(source=f"coco: {path}", clipped=clipped_total, dropped=dropped_total)

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
