"""`trainer data shapes ...`: write the built-in synthetic shapes as files in a standard layout
that the project's own loaders (and other tools) read; `trainer data convert ...`: YOLO <-> COCO.

Layouts written by `trainer data shapes --task T --format F --out DIR`:

| task | format | files |
| --- | --- | --- |
| classification | image_folder | `DIR/<split>/<class>/<split>_000000.png` (every class folder, even if empty) |
| detection | coco | `DIR/images/<split>/*.png`, `DIR/annotations/instances_<split>.json` (category ids 1..K) |
| detection | yolo | `DIR/images/<split>/*.png`, `DIR/labels/<split>/*.txt`, `DIR/classes.txt`, `DIR/data.yaml` |
| segmentation | mask_folder | `DIR/images/<split>/*.png`, `DIR/masks/<split>/*.png` (8-bit class indices) |

Every layout also gets `DIR/recipe_data.yaml`, the recipe's `data:` section that reads it back
(merge it after a recipe: `trainer train recipe.yaml DIR/recipe_data.yaml`). Both commands refuse
an existing output (a non-empty folder, a file) unless `--force`, and write only inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trainer.data.convert import Converted, coco_to_yolo, write_yolo_labels, write_yolo_meta, yolo_to_coco
from trainer.data.errors import DataError
from trainer.data.output_paths import prepare_output, write_bytes, write_text
from trainer.data.shapes import SPLITS
from trainer.data.shapes_generator import SHAPE_NAMES, generate_sample
from trainer.engine.reporting import console

FORMATS_FOR_TASK = {"classification": ("image_folder",), "detection": ("coco", "yolo"),
                    "segmentation": ("mask_folder",)}
SHAPES_PER_IMAGE = {"classification": (1, 1), "detection": (1, 4), "segmentation": (1, 3)}


def _save_png(array: np.ndarray, path: Path, *, force: bool) -> None:
    """A PNG of `array`, written as a new file (an existing one only with `force`)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")  # (H, W, 3) uint8: RGB; (H, W) uint8: L
    write_bytes(path, buffer.getvalue(), force=force)


def _parse_splits(text: str) -> list[str]:
    splits = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [split for split in splits if split not in SPLITS]
    if not splits or unknown:
        raise DataError(f"--split: unknown split(s) {unknown or [text]} (choices: {', '.join(SPLITS)})")
    return list(dict.fromkeys(splits))


def export_shapes(
    *, task: str, fmt: str, out: Path, num_images: int = 200, image_size: int = 64,
    splits: list[str] = ("train", "val"), seed: int = 0, force: bool = False,
) -> dict[str, Any]:
    """Write the data set; returns the recipe `data:` section that loads it."""
    if task not in FORMATS_FOR_TASK:
        raise DataError(f"--task: unknown task '{task}' (choices: {', '.join(FORMATS_FOR_TASK)})")
    if fmt not in FORMATS_FOR_TASK[task]:
        raise DataError(f"--format: {task} data can be written as {' or '.join(FORMATS_FOR_TASK[task])}, not '{fmt}'")
    if num_images < 1 or image_size < 8:
        raise DataError(f"need --num-images >= 1 and --image-size >= 8, got {num_images} and {image_size}")
    out = Path(out).resolve()  # the recipe data section names absolute paths
    prepare_output(out, folder=True, force=force)
    low, high = SHAPES_PER_IMAGE[task]
    names = list(SHAPE_NAMES)
    data: dict[str, Any] = {"format": fmt}
    for split in splits:
        seed_for_split = seed * len(SPLITS) + SPLITS.index(split)  # as trainer.data.shapes draws them
        drawn = [(f"{split}_{index:06d}", generate_sample(seed=seed_for_split, index=index, image_size=image_size,
                                                          min_shapes=low, max_shapes=high))
                 for index in range(num_images)]
        data[split] = _WRITERS[fmt](out, split, drawn, names=names, image_size=image_size, force=force)
    write_text(out / "recipe_data.yaml",
               "# the recipe's data section for this folder; merge after a recipe file:\n"
               f"#   trainer train recipe.yaml {out / 'recipe_data.yaml'}\n"
               + yaml.safe_dump({"data": data}, sort_keys=False, default_flow_style=None), force=force)
    return data


def _image_folder(
    out: Path, split: str, drawn: list, *, names: list[str], image_size: int, force: bool
) -> dict[str, Any]:
    for name in names:
        (out / split / name).mkdir(parents=True, exist_ok=True)
    for stem, sample in drawn:
        _save_png(sample.image, out / split / names[int(sample.labels[0])] / f"{stem}.png", force=force)
    return {"root": str(out), "class_names": names}


def _coco(out: Path, split: str, drawn: list, *, names: list[str], image_size: int, force: bool) -> dict[str, Any]:
    images, annotations = [], []
    for image_id, (stem, sample) in enumerate(drawn, start=1):
        _save_png(sample.image, out / "images" / split / f"{stem}.png", force=force)
        images.append({"id": image_id, "file_name": f"{stem}.png", "width": image_size, "height": image_size})
        for (x1, y1, x2, y2), label in zip(sample.boxes.tolist(), sample.labels.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    categories = [{"id": index + 1, "name": name, "supercategory": "shape"} for index, name in enumerate(names)]
    path = out / "annotations" / f"instances_{split}.json"
    payload = {"info": {"description": f"trainer shapes, {split}"}, "licenses": [], "images": images,
               "annotations": annotations, "categories": categories}
    write_text(path, json.dumps(payload) + "\n", force=force)
    return {"images_dir": str(out / "images" / split), "annotations": str(path)}


def _yolo(out: Path, split: str, drawn: list, *, names: list[str], image_size: int, force: bool) -> dict[str, Any]:
    for stem, sample in drawn:
        _save_png(sample.image, out / "images" / split / f"{stem}.png", force=force)
        write_yolo_labels(out / "labels" / split / f"{stem}.txt", sample.boxes, sample.labels,
                          width=image_size, height=image_size, force=force)
    existing = [s for s in SPLITS if (out / "images" / s).is_dir()]
    write_yolo_meta(out, names, existing, force=True)  # rewritten after each split, listing the splits so far
    return {"root": str(out)}


def _mask_folder(
    out: Path, split: str, drawn: list, *, names: list[str], image_size: int, force: bool
) -> dict[str, Any]:
    for stem, sample in drawn:
        _save_png(sample.image, out / "images" / split / f"{stem}.png", force=force)
        _save_png(sample.mask.astype(np.uint8), out / "masks" / split / f"{stem}.png", force=force)
    return {"root": str(out), "class_names": ["background", *names]}


_WRITERS = {"image_folder": _image_folder, "coco": _coco, "yolo": _yolo, "mask_folder": _mask_folder}


def shapes_command(
    *, task: str, fmt: str, out: str, num_images: int, image_size: int, split: str, seed: int, force: bool = False
) -> Path:
    data = export_shapes(task=task, fmt=fmt, out=Path(out), num_images=num_images, image_size=image_size,
                         splits=_parse_splits(split), seed=seed, force=force)
    splits = [key for key in data if key != "format"]
    console.print(f"wrote {task} shapes as {fmt} to {out} ({num_images} images per split: {', '.join(splits)}); "
                  f"recipe data section: {Path(out) / 'recipe_data.yaml'}", soft_wrap=True, markup=False)
    return Path(out)


def convert_command(
    *, source_format: str, target_format: str, source: str, out: str, split: str = "train",
    images_dir: str | None = None, symlink: bool = False, force: bool = False,
) -> Converted:
    pair = (source_format, target_format)
    if pair == ("yolo", "coco"):
        path = Path(source)
        if not path.exists():
            raise DataError(f"YOLO source not found: {path} (a root folder or a data yaml)")
        is_yaml = path.is_file() and path.suffix in (".yaml", ".yml")
        converted = yolo_to_coco(out=Path(out), split=split, root=None if is_yaml else path,
                                 data_yaml=path if is_yaml else None, force=force)
    elif pair == ("coco", "yolo"):
        if images_dir is None:
            raise DataError("--images-dir is needed to convert COCO (the folder that file_name is relative to)")
        converted = coco_to_yolo(annotations=Path(source), images_dir=Path(images_dir), out=Path(out), split=split,
                                 symlink=symlink, force=force)
    else:
        raise DataError(f"cannot convert {source_format} to {target_format} (supported: yolo -> coco, coco -> yolo)")
    console.print(converted.summary(), soft_wrap=True, markup=False)
    return converted
