"""`yolo`: detection data in the YOLO / Ultralytics layout.

Where the images are (the first that applies):
- `images_dir` (labels in `labels_dir`, else found by Ultralytics' rule below);
- an Ultralytics `data_yaml` with an entry for the split (see `yolo_yaml`);
- folders under `root` (or the yaml's `path`): `root/images/<split>/` + `root/labels/<split>/`, or
  `root/<split>/images/` + `root/<split>/labels/` (`val` also finds `valid`, as Roboflow names it).
An image's label file is its path with the last `/images/` replaced by `/labels/` and the suffix
by `.txt` (Ultralytics' rule). Each line is `class cx cy w h`, normalised to 0..1 (polygon lines
`class x1 y1 x2 y2 x3 y3 ...` are accepted and reduced to their box). A missing label file is an
image with no boxes; every malformed line of every file is reported together.
Class names: `class_names` (a list or a class list file), else the yaml's `names` (or `nc`), else
`root/classes.txt`, else the `names` of `root/data.yaml`. Samples' `image_id` is the index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from trainer.data.class_names import read_class_file, resolve_class_names
from trainer.data.coco import build_coco_gt, clip_boxes, warn_repaired
from trainer.data.errors import DataError
from trainer.data.image_folder import IMAGE_EXTENSIONS, header_size, header_sizes, list_images, read_rgb_image
from trainer.data.layout import split_folders
from trainer.data.reading import read_text
from trainer.data.structure import Problems
from trainer.data.yolo_yaml import DataYaml, images_from_entries, load_data_yaml
from trainer.registry import DATASETS


def label_path_for(image: Path) -> Path:
    text = image.as_posix()
    head, sep, tail = text.rpartition("/images/")
    if sep:
        text = f"{head}/labels/{tail}"
    return Path(text).with_suffix(".txt")


def _parse_line(line: str, *, where: str, num_classes: int) -> tuple[list[float], int]:
    fields = line.split()
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        raise DataError(
            f"{where}: expected 5 fields 'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 ...'), "
            f"got {len(fields)}: {line.strip()!r}"
        )
    try:
        values = [float(field) for field in fields]
    except ValueError:
        bad = next(field for field in fields if not _is_number(field))
        raise DataError(f"{where}: '{bad}' is not a number: {line.strip()!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise DataError(f"{where}: non-finite value: {line.strip()!r}")
    class_id = values[0]
    if not class_id.is_integer() or not 0 <= class_id < num_classes:
        raise DataError(
            f"{where}: class id {fields[0]} is not one of the {num_classes} classes (0..{num_classes - 1})"
        )
    if len(values) == 5:
        cx, cy, w, h = values[1:]
        return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], int(class_id)
    xs, ys = values[1::2], values[2::2]
    return [min(xs), min(ys), max(xs), max(ys)], int(class_id)


def parse_label_file(path: Path, *, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) normalised XYXY float64, labels (N,) int64); a malformed line is a DataError
    naming `file:line`."""
    boxes, labels = [], []
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            box, label = _parse_line(line, where=f"{path}:{line_number}", num_classes=num_classes)
            boxes.append(box)
            labels.append(label)
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(labels, dtype=np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _folder_images(folder: Path, labels: Path | None) -> tuple[list[Path], Callable[[Path], Path]]:
    if not folder.is_dir():
        raise DataError(f"yolo: image folder not found: {folder}")
    if labels is None:
        return list_images(folder), label_path_for
    return list_images(folder), lambda image: labels / image.relative_to(folder).with_suffix(".txt")


def _locate(
    split: str, *, root: Path | None, spec: DataYaml | None, images_dir: Path | None, labels_dir: Path | None
) -> tuple[list[Path], Callable[[Path], Path], str]:
    """(image paths, image -> label file, a description of where) for the first source that applies."""
    if images_dir is not None:
        images, label_of = _folder_images(images_dir, labels_dir)
        return images, label_of, str(images_dir)
    if spec is not None and spec.entries:
        if split not in spec.entries:
            raise DataError(f"yolo: {spec.source}: no '{split}' entry (has: {', '.join(spec.entries)})")
        if labels_dir is not None:
            raise DataError("yolo: labels_dir needs images_dir (with a data yaml, labels are found by Ultralytics' "
                            "rule: the image path with /images/ replaced by /labels/)")
        return images_from_entries(spec, split), label_path_for, f"{spec.source} '{split}'"
    base = root if root is not None else spec.base if spec is not None else None
    if base is None:
        raise DataError("yolo: give root (with images/<split>/ and labels/<split>/), data_yaml or images_dir")
    folder, labels = split_folders(base, split, kind="images", companion="labels", fmt="yolo")
    images, label_of = _folder_images(folder, labels_dir or labels)
    return images, label_of, str(folder)


def _class_names(
    class_names: list[str] | str | None, *, root: Path | None, spec: DataYaml | None
) -> list[str]:
    names = resolve_class_names(class_names, root=root)
    if names is not None:
        if spec is not None and spec.names is not None and names != spec.names:
            raise DataError(f"yolo: class_names {names} differ from 'names' in {spec.source}: {spec.names}")
        return names
    if spec is not None and spec.names is not None:
        return spec.names
    if root is not None and (root / "classes.txt").is_file():
        return read_class_file(root / "classes.txt")
    if spec is None and root is not None and (root / "data.yaml").is_file():
        found = load_data_yaml(root / "data.yaml", root=root).names
        if found is not None:
            return found
    raise DataError(
        "yolo: no class names: set class_names (a list or a file), give a data_yaml with 'names', "
        "or put classes.txt (or a data.yaml with names) in root"
    )


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
        images_dir: str | None = None,
        labels_dir: str | None = None,
        class_names: list[str] | str | None = None,
    ) -> None:
        if task != "detection":
            raise DataError(f"yolo: holds detection data, not '{task}'")
        self.task, self.split = task, split
        base = None if root is None else Path(root)
        spec = None if data_yaml is None else load_data_yaml(data_yaml, root=root)
        image_paths, label_of, where = _locate(
            split, root=base, spec=spec, images_dir=None if images_dir is None else Path(images_dir),
            labels_dir=None if labels_dir is None else Path(labels_dir),
        )
        image_paths = [path for path in image_paths if path.suffix.lower() in IMAGE_EXTENSIONS]
        if not image_paths:
            raise DataError(f"yolo: no images in {where}")
        missing = [str(path) for path in image_paths if not path.is_file()]
        if missing:
            raise DataError(f"yolo: {where}: {len(missing)} listed image(s) do not exist, e.g. {missing[:3]}")
        self.class_names: list[str] = _class_names(class_names, root=base, spec=spec)
        self.image_paths: list[Path] = image_paths
        self._boxes, self._labels = self._read_labels([label_of(path) for path in image_paths], where=where)

    def _read_labels(self, label_files: list[Path], *, where: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Normalised XYXY boxes clipped to 0..1 and labels per image; every bad file reported together."""
        all_boxes, all_labels, problems = [], [], Problems()
        clipped_total = dropped_total = 0
        for label_file in label_files:
            boxes, labels = np.zeros((0, 4)), np.zeros((0,), dtype=np.int64)
            if label_file.is_file():
                try:
                    boxes, labels = parse_label_file(label_file, num_classes=len(self.class_names))
                except DataError as error:
                    problems.add(error)
            boxes, keep, clipped = clip_boxes(boxes, width=1.0, height=1.0)
            clipped_total += clipped
            dropped_total += int((~keep).sum())
            all_boxes.append(boxes[keep])
            all_labels.append(labels[keep])
        problems.raise_if_any()
        warn_repaired(source=f"yolo: {where}", clipped=clipped_total, dropped=dropped_total)
        return all_boxes, all_labels

    def __len__(self) -> int:
        return len(self.image_paths)

    def image_sizes(self) -> Iterator[tuple[str, int, int]]:
        """(file, height, width) of every image, from the file headers."""
        return header_sizes(self.image_paths)

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
        images, boxes = [], []
        for index, path in enumerate(self.image_paths):
            height, width = header_size(path)
            images.append({"id": index, "width": width, "height": height, "file_name": str(path)})
            boxes.append(self._boxes[index] * np.array([width, height, width, height], dtype=np.float32))
        crowd = [np.zeros(len(labels), dtype=bool) for labels in self._labels]
        return build_coco_gt(
            images=images, boxes_xyxy=boxes, labels=self._labels, iscrowd=crowd, class_names=self.class_names
        )
