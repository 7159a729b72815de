"""Detection annotations between the YOLO txt layout and a COCO instances JSON.

- `yolo_to_coco`: reads a YOLO data set the way the `yolo` loader does (root with
  `images/<split>/` + `labels/<split>/`, or an Ultralytics data yaml) and writes one COCO JSON
  for the split: category ids 1..K in class order (COCO's convention; the `coco` loader maps them
  back to class indices 0..K-1), boxes in pixels, `file_name` relative to the common folder of the
  images (printed as the `images_dir` to use).
- `coco_to_yolo`: writes `out/images/<split>/` (copies of the images, or symlinks),
  `out/labels/<split>/<stem>.txt` (`class cx cy w h`, normalised), `out/classes.txt` and an
  Ultralytics `out/data.yaml`. Classes are the categories sorted by id (as the `coco` loader
  orders them). Crowd annotations have no YOLO form and are left out (counted in the summary);
  boxes reaching outside their image are clipped, as the loaders do.

Both refuse to overwrite: the output file, or a non-empty output folder, must not exist.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from trainer.data.coco import clip_boxes, load_json
from trainer.data.errors import DataError

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


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as pil:
            return pil.size  # (width, height)
    except OSError as error:
        raise DataError(f"cannot read image {path}: {error}") from None


def refuse_existing(path: Path, *, folder: bool) -> None:
    if folder and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DataError(f"{path} exists and is not an empty folder; not overwriting it")
    if not folder and path.exists():
        raise DataError(f"{path} exists; not overwriting it")


def yolo_to_coco(
    *, out: Path, split: str = "train", root: Path | None = None, data_yaml: Path | None = None,
    class_names: list[str] | None = None,
) -> Converted:
    from trainer.data.yolo import YoloDataset

    out = Path(out)
    refuse_existing(out, folder=False)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(gt) + "\n", encoding="utf-8")
    return Converted(output=out, images=len(gt["images"]), boxes=len(gt["annotations"]), images_dir=images_dir)


def write_yolo_labels(path: Path, boxes_xyxy: np.ndarray, labels: np.ndarray, *, width: float, height: float) -> None:
    """One `class cx cy w h` line per box, normalised to 0..1, 6 decimals."""
    lines = []
    for (x1, y1, x2, y2), label in zip(np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4), labels):
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{int(label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_yolo_meta(out: Path, class_names: list[str], splits: list[str]) -> None:
    """`classes.txt` and an Ultralytics `data.yaml` (path: ., <split>: images/<split>, names)."""
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
    spec = {"path": ".", **{split: f"images/{split}" for split in splits},
            "names": {index: name for index, name in enumerate(class_names)}}
    (out / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def coco_to_yolo(
    *, annotations: Path, images_dir: Path, out: Path, split: str = "train", symlink: bool = False
) -> Converted:
    annotations, images_dir, out = Path(annotations), Path(images_dir), Path(out)
    data = load_json(annotations, kind="coco")
    if not images_dir.is_dir():
        raise DataError(f"coco: images directory not found: {images_dir}")
    refuse_existing(out, folder=True)
    categories = sorted(data["categories"], key=lambda category: category["id"])
    label_of = {category["id"]: index for index, category in enumerate(categories)}
    per_image: dict[int, list[dict]] = {image["id"]: [] for image in data["images"]}
    for annotation in data.get("annotations", []):
        if annotation.get("category_id") not in label_of or annotation.get("image_id") not in per_image:
            raise DataError(f"coco: {annotations}: annotation {annotation.get('id', '?')} refers to an unknown "
                            "category_id or image_id")
        per_image[annotation["image_id"]].append(annotation)
    boxes_written = crowd = 0
    for image in data["images"]:
        source = images_dir / image["file_name"]
        if not source.is_file():
            raise DataError(f"coco: image {source} listed in {annotations} is missing")
        relative = Path(image["file_name"])
        target = out / "images" / split / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if symlink:
            target.symlink_to(source.resolve())
        else:
            shutil.copy2(source, target)
        entries = [a for a in per_image[image["id"]] if not a.get("iscrowd", 0)]
        crowd += len(per_image[image["id"]]) - len(entries)
        width, height = float(image["width"]), float(image["height"])
        xywh = np.array([a["bbox"] for a in entries], dtype=np.float64).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes, keep, _ = clip_boxes(xyxy, width=width, height=height)
        labels = np.array([label_of[a["category_id"]] for a in entries], dtype=np.int64)
        write_yolo_labels(out / "labels" / split / relative.with_suffix(".txt"), boxes[keep], labels[keep],
                          width=width, height=height)
        boxes_written += int(keep.sum())
    write_yolo_meta(out, [str(category["name"]) for category in categories], [split])
    return Converted(output=out, images=len(data["images"]), boxes=boxes_written, skipped_crowd=crowd)
