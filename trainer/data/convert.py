"""Detection annotations between the YOLO txt layout and a COCO instances JSON.

- `yolo_to_coco`: reads a YOLO data set the way the `yolo` loader does (every layout it accepts,
  or an Ultralytics data yaml) and writes one COCO JSON for the split: category ids 1..K in class
  order (COCO's convention; the `coco` loader maps them back to class indices 0..K-1), boxes in
  pixels, `file_name` relative to the common folder of the images (printed as the `images_dir`).
- `coco_to_yolo`: writes `out/images/<split>/` (copies of the images, or symlinks),
  `out/labels/<split>/<stem>.txt` (`class cx cy w h`, normalised), `out/classes.txt` and an
  Ultralytics `out/data.yaml`. Classes are the categories sorted by id (as the `coco` loader
  orders them). Crowd annotations have no YOLO form and are left out (counted in the summary);
  boxes reaching outside their image are clipped, as the loaders do.

Every written path stays inside its folder: a `file_name` that is absolute or leads out of
`out/images/<split>` (`../`, a symlink) is refused before anything is written. Neither overwrites
without `force`: the output file, or a non-empty output folder, must not exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from trainer.data.coco import clip_boxes
from trainer.data.coco_parse import CocoAnnotation, load_coco
from trainer.data.errors import DataError
from trainer.data.output_paths import inside, place_file, prepare_output, write_text

FORMATS = ("yolo", "coco")


@dataclass
class Converted:
    output: Path
    images: int
    boxes: int
    skipped_crowd: int = 0
    images_dir: Path | None = None  # for a COCO output: the folder that file_name is relative to

    def summary(self) -> str:
        text = f"wrote {self.output}: {self.images} images, {self.boxes} boxes"
        if self.skipped_crowd:
            text += f"; {self.skipped_crowd} crowd annotation(s) left out (YOLO has no crowd flag)"
        if self.images_dir is not None:
            text += f"; images_dir: {self.images_dir}"
        return text


def yolo_to_coco(
    *, out: Path, split: str = "train", root: Path | None = None, data_yaml: Path | None = None,
    class_names: list[str] | None = None, force: bool = False,
) -> Converted:
    from trainer.data.yolo import YoloDataset

    out = Path(out)
    prepare_output(out, folder=False, force=force)
    dataset = YoloDataset(task="detection", split=split, root=None if root is None else str(root),
                          data_yaml=None if data_yaml is None else str(data_yaml), class_names=class_names)
    paths = [path.resolve() for path in dataset.image_paths]
    images_dir = Path(os.path.commonpath([str(path.parent) for path in paths]))
    gt = dataset.coco_gt()  # pixels; category_id = class index; file_name = the path
    for image, path in zip(gt["images"], paths):
        image["file_name"] = path.relative_to(images_dir).as_posix()
    for annotation in gt["annotations"]:
        annotation["category_id"] += 1
    for category in gt["categories"]:
        category["id"] += 1
    write_text(out, json.dumps(gt) + "\n", force=force)
    return Converted(output=out, images=len(gt["images"]), boxes=len(gt["annotations"]), images_dir=images_dir)


def yolo_label_text(boxes_xyxy: np.ndarray, labels: np.ndarray, *, width: float, height: float) -> str:
    """One `class cx cy w h` line per box, normalised to 0..1, 6 decimals."""
    lines = []
    for (x1, y1, x2, y2), label in zip(np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4), labels):
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{int(label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def write_yolo_labels(
    path: Path, boxes_xyxy: np.ndarray, labels: np.ndarray, *, width: float, height: float, force: bool = False
) -> None:
    """A YOLO label file (see `yolo_label_text`)."""
    write_text(path, yolo_label_text(boxes_xyxy, labels, width=width, height=height), force=force)


def write_yolo_meta(out: Path, class_names: list[str], splits: list[str], *, force: bool = False) -> None:
    """`classes.txt` and an Ultralytics `data.yaml` (path: ., <split>: images/<split>, names)."""
    write_text(out / "classes.txt", "".join(f"{name}\n" for name in class_names), force=force)
    spec = {"path": ".", **{split: f"images/{split}" for split in splits},
            "names": {index: name for index, name in enumerate(class_names)}}
    write_text(out / "data.yaml", yaml.safe_dump(spec, sort_keys=False), force=force)


def _yolo_targets(images: list[dict], *, out: Path, split: str, source: Path) -> list[tuple[Path, Path]]:
    """(image target, label target) per image, every one checked to stay inside its folder."""
    image_root = inside(out, Path("images") / split, source="--split")
    label_root = inside(out, Path("labels") / split, source="--split")
    targets, seen = [], {}
    for index, image in enumerate(images):
        where = f"{source}: images[{index}].file_name"
        relative = Path(image["file_name"])
        label = inside(label_root, relative.with_suffix(".txt"), source=where)
        if label.resolve() in seen:
            raise DataError(f"{where}: '{relative}' gives the same label file as images[{seen[label.resolve()]}]")
        seen[label.resolve()] = index
        targets.append((inside(image_root, relative, source=where), label))
    return targets


def _label_boxes(entries: list[CocoAnnotation], *, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    xywh = np.array([entry.bbox for entry in entries], dtype=np.float64).reshape(-1, 4)
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    boxes, keep, _ = clip_boxes(xyxy, width=width, height=height)
    labels = np.array([entry.label for entry in entries], dtype=np.int64)
    return boxes[keep], labels[keep]


def coco_to_yolo(
    *, annotations: Path, images_dir: Path, out: Path, split: str = "train", symlink: bool = False,
    force: bool = False,
) -> Converted:
    annotations, images_dir, out = Path(annotations), Path(images_dir), Path(out)
    content = load_coco(annotations)
    if not images_dir.is_dir():
        raise DataError(f"coco: images directory not found: {images_dir}")
    prepare_output(out, folder=True, force=force)
    targets = _yolo_targets(content.images, out=out, split=split, source=str(annotations))
    missing = [image["file_name"] for image in content.images if not (images_dir / image["file_name"]).is_file()]
    if missing:
        raise DataError(f"coco: {len(missing)} image(s) listed in {annotations} are missing from {images_dir}, "
                        f"e.g. {missing[:3]}")
    per_image: list[list[CocoAnnotation]] = [[] for _ in content.images]
    for annotation in content.annotations:
        per_image[annotation.image_index].append(annotation)
    boxes_written = crowd = 0
    for image, entries, (image_target, label_target) in zip(content.images, per_image, targets):
        place_file(images_dir / image["file_name"], image_target, force=force, symlink=symlink)
        kept = [entry for entry in entries if not entry.iscrowd]
        crowd += len(entries) - len(kept)
        width, height = float(image["width"]), float(image["height"])
        boxes, labels = _label_boxes(kept, width=width, height=height)
        write_yolo_labels(label_target, boxes, labels, width=width, height=height, force=force)
        boxes_written += len(labels)
    write_yolo_meta(out, content.class_names, [split], force=force)
    return Converted(output=out, images=len(content.images), boxes=boxes_written, skipped_crowd=crowd)
