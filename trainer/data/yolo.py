"""`yolo`: detection data in the YOLO / Ultralytics layout.

Without `data_yaml`: images in `root/images/<split>/`, labels in `root/labels/<split>/`.
With an Ultralytics data yaml (`path`, `train`, `val`, `test`, `names`): `path` is taken relative
to the yaml's folder (`root`, when given, replaces it); a split entry is a folder, a `.txt` list of
image paths (relative lines are relative to the list's folder), or a list of those.
An image's label file is its path with the last `/images/` replaced by `/labels/` and the suffix
by `.txt` (Ultralytics' rule). Each line is `class cx cy w h`, normalised to 0..1 (polygon lines
`class x1 y1 x2 y2 x3 y3 ...` are accepted and reduced to their box). A missing label file is an
image with no boxes. Class names: `class_names`, else the yaml's `names`, else `root/classes.txt`.
Samples' `image_id` is the index in the data set.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import yaml
from torchvision import tv_tensors

from trainer.data.coco import build_coco_gt, clip_boxes, warn_repaired
from trainer.data.errors import DataError
from trainer.data.image_folder import IMAGE_EXTENSIONS, list_images, read_rgb_image
from trainer.registry import DATASETS


def label_path_for(image: Path) -> Path:
    text = image.as_posix()
    head, sep, tail = text.rpartition("/images/")
    if sep:
        text = f"{head}/labels/{tail}"
    return Path(text).with_suffix(".txt")


def parse_label_file(path: Path, *, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) normalised XYXY float64, labels (N,) int64); malformed lines are DataErrors."""
    boxes, labels = [], []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
                raise DataError(
                    f"{path}:{line_number}: expected 5 fields 'class cx cy w h' "
                    "(or a polygon 'class x1 y1 x2 y2 ...'), "
                    f"got {len(fields)}: {line.strip()!r}"
                )
            try:
                values = [float(field) for field in fields]
            except ValueError:
                bad = next(field for field in fields if not _is_number(field))
                raise DataError(f"{path}:{line_number}: '{bad}' is not a number: {line.strip()!r}") from None
            if not all(math.isfinite(value) for value in values):
                raise DataError(f"{path}:{line_number}: non-finite value: {line.strip()!r}")
            class_id = values[0]
            if not class_id.is_integer() or not 0 <= class_id < num_classes:
                raise DataError(
                    f"{path}:{line_number}: class id {fields[0]} is not one of the {num_classes} classes "
                    f"(0..{num_classes - 1})"
                )
            if len(values) == 5:
                cx, cy, w, h = values[1:]
                boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            else:
                xs, ys = values[1::2], values[2::2]
                boxes.append([min(xs), min(ys), max(xs), max(ys)])
            labels.append(int(class_id))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(labels, dtype=np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _images_from_entry(entry: str | list, *, base: Path, source: Path) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        target = Path(str(item)) if Path(str(item)).is_absolute() else base / str(item)
        if target.is_dir():
            images.extend(list_images(target))
        elif target.is_file() and target.suffix == ".txt":
            for line in target.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    path = Path(line.strip())
                    images.append(path if path.is_absolute() else target.parent / path)
        else:
            raise DataError(f"yolo: {source}: split entry '{item}' -> {target} is neither a folder nor a .txt list")
    return images


def _names_from_yaml(names: object, *, source: Path) -> list[str]:
    if isinstance(names, list):
        return [str(name) for name in names]
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return [str(names[index]) for index in range(len(names))]
    raise DataError(f"yolo: {source}: 'names' must be a list or a mapping 0..K-1 -> name, got {names!r}")


@DATASETS.register("yolo", tasks=("detection",))
class YoloDataset(torch.utils.data.Dataset):
    """YOLO txt labels + images; detection samples."""

    def __init__(
        self,
        *,
        task: str,
        split: str,
        root: str | None = None,
        data_yaml: str | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        if task != "detection":
            raise DataError(f"yolo: holds detection data, not '{task}'")
        if root is None and data_yaml is None:
            raise DataError("yolo: give root (with images/<split>/ and labels/<split>/) or data_yaml")
        self.task, self.split = task, split
        yaml_names = None
        if data_yaml is not None:
            source = Path(data_yaml)
            if not source.is_file():
                raise DataError(f"yolo: data yaml not found: {source}")
            spec = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
            if not isinstance(spec, dict):
                raise DataError(f"yolo: {source}: expected a mapping with path/train/val/names")
            base = Path(root) if root is not None else source.parent / str(spec.get("path") or ".")
            if spec.get(split) is None:
                raise DataError(f"yolo: {source}: no '{split}' entry (has: {', '.join(map(str, spec))})")
            image_paths = _images_from_entry(spec[split], base=base, source=source)
            yaml_names = _names_from_yaml(spec["names"], source=source) if "names" in spec else None
            where = f"{source} '{split}'"
        else:
            base = Path(root)
            folder = base / "images" / split
            if not folder.is_dir():
                raise DataError(f"yolo: image folder not found: {folder} (expected root/images/{split}/)")
            image_paths = list_images(folder)
            where = str(folder)
        image_paths = [path for path in image_paths if path.suffix.lower() in IMAGE_EXTENSIONS]
        if not image_paths:
            raise DataError(f"yolo: no images in {where}")
        missing = [str(path) for path in image_paths if not path.is_file()]
        if missing:
            raise DataError(f"yolo: {len(missing)} listed image(s) do not exist, e.g. {missing[:3]}")

        if class_names is not None:
            if yaml_names is not None and list(class_names) != yaml_names:
                raise DataError(
                    f"yolo: class_names {list(class_names)} differ from 'names' in {data_yaml}: {yaml_names}"
                )
            names = [str(name) for name in class_names]
        elif yaml_names is not None:
            names = yaml_names
        elif root is not None and (Path(root) / "classes.txt").is_file():
            names = [line.strip() for line in (Path(root) / "classes.txt").read_text().splitlines() if line.strip()]
        else:
            raise DataError(
                "yolo: no class names: set class_names, or give a data_yaml with 'names', or root/classes.txt"
            )
        self.class_names: list[str] = names
        self.image_paths: list[Path] = image_paths

        self._boxes, self._labels = [], []  # normalised XYXY, clipped to 0..1
        clipped_total = dropped_total = 0
        for path in image_paths:
            label_file = label_path_for(path)
            if label_file.is_file():
                boxes, labels = parse_label_file(label_file, num_classes=len(names))
            else:
                boxes, labels = np.zeros((0, 4)), np.zeros((0,), dtype=np.int64)
            boxes, keep, clipped = clip_boxes(boxes, width=1.0, height=1.0)
            clipped_total += clipped
            dropped_total += int((~keep).sum())
            self._boxes.append(boxes[keep])
            self._labels.append(labels[keep])
        warn_repaired(source=f"yolo: {where}", clipped=clipped_total, dropped=dropped_total)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> dict:
        image = read_rgb_image(self.image_paths[index])
        height, width = image.shape[-2:]
        scale = np.array([width, height, width, height], dtype=np.float32)
        boxes = torch.from_numpy(self._boxes[index] * scale)
        labels = torch.from_numpy(self._labels[index])
        return {
            "image": image,
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": labels,
            "iscrowd": torch.zeros(len(labels), dtype=torch.bool),
            "image_id": index,
        }

    def coco_gt(self) -> dict:
        """Ground truth in COCO format (pixels; image ids = indices; category_id = class index)."""
        from PIL import Image

        images, boxes = [], []
        for index, path in enumerate(self.image_paths):
            try:
                with Image.open(path) as pil:
                    width, height = pil.size
            except OSError as error:
                raise DataError(f"cannot read image size of {path}: {error}") from error
            images.append({"id": index, "width": width, "height": height, "file_name": str(path)})
            boxes.append(self._boxes[index] * np.array([width, height, width, height], dtype=np.float32))
        crowd = [np.zeros(len(labels), dtype=bool) for labels in self._labels]
        return build_coco_gt(
            images=images, boxes_xyxy=boxes, labels=self._labels, iscrowd=crowd, class_names=self.class_names
        )
