"""Data sets for `bench_peers.py`, written once in the layouts the three tools read.

Two detection sets are drawn from a seed (same files for every tool):

- ``shapes``: trainer's built-in shapes (4 classes, 1-2 per image), via its generator.
- ``digits``: a harder set: 1-4 small digits 0-9 (10 similar classes: 1/7, 3/8, 6/9/0) rendered
  with random size, rotation and colour on a noisy gradient with line clutter.

Layout under ``root/<name>/``: ``images/{train,val}/*.png`` and ``labels/{train,val}/*.txt``
(YOLO: class cx cy w h, normalised) read by NetsPresso and Ultralytics (``data.yaml``) and by
trainer's ``yolo`` format; ``val_coco.json`` is the ground truth every tool's predictions are
scored against. Classification sets (``<name>_cls``): ``{train,val}/<class>/*.png`` (trainer
image_folder, Ultralytics) plus a flat ``{train,val}_flat/`` folder with a CSV for NetsPresso.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trainer.data.shapes_generator import SHAPE_NAMES, generate_sample

DIGIT_NAMES = tuple(str(d) for d in range(10))


def _digit_glyph(rng: np.random.Generator, digit: int, height: int) -> np.ndarray:
    """A (h, w) float mask of one digit about ``height`` px tall, rotated up to 15 degrees, tight."""
    font = ImageFont.load_default(size=int(height * 1.35))
    canvas = Image.new("L", (height * 3, height * 3), 0)
    ImageDraw.Draw(canvas).text((height // 2, height // 4), str(digit), fill=255, font=font,
                                stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(mask > 0.3)
    return mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    image = start + (end - start) * (ramp if rng.random() < 0.5 else ramp.transpose(1, 0, 2))
    image = np.broadcast_to(image, (size, size, 3)).copy()
    image += rng.normal(0, 12, image.shape)
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 9))):  # clutter: strokes as thick as the digits' strokes
        points = [tuple(rng.uniform(0, size, 2)) for _ in range(int(rng.integers(2, 4)))]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 4)))
    return np.asarray(canvas, dtype=np.float32)


def digits_sample(*, seed: int, index: int, image_size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8, boxes (N, 4) xyxy pixels, labels (N,) for sample ``index``."""
    rng = np.random.default_rng([seed, index, 7])
    image = _background(rng, image_size)
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, 5))):
        digit = int(rng.integers(0, 10))
        glyph = _digit_glyph(rng, digit, int(rng.integers(10, 33)))
        h, w = glyph.shape
        for _attempt in range(20):  # no overlap between digits
            x0, y0 = int(rng.integers(0, image_size - w)), int(rng.integers(0, image_size - h))
            box = np.array([x0, y0, x0 + w, y0 + h], dtype=np.float32)
            if all(box[0] >= b[2] or box[2] <= b[0] or box[1] >= b[3] or box[3] <= b[1] for b in boxes):
                break
        else:
            continue
        region = image[y0: y0 + h, x0: x0 + w]
        mean = region.mean(axis=(0, 1))
        colour = np.where(mean > 128, rng.uniform(0, 70, 3), rng.uniform(185, 255, 3))  # readable contrast
        region[:] = region * (1 - glyph[..., None]) + colour * glyph[..., None]
        boxes.append(box)
        labels.append(digit)
    return np.clip(image, 0, 255).astype(np.uint8), np.array(boxes, np.float32).reshape(-1, 4), np.array(labels)


def shapes_sample(*, seed: int, index: int, image_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sample = generate_sample(seed=seed, index=index, image_size=image_size, min_shapes=1, max_shapes=2)
    return sample.image, sample.boxes, sample.labels


SETS = {"shapes": (shapes_sample, SHAPE_NAMES, 64), "digits": (digits_sample, DIGIT_NAMES, 128)}


def write_detection_set(root: Path, name: str, *, num_train: int, num_val: int, seed: int = 0) -> Path:
    """Write (once) the set ``name`` under ``root/name``; returns that folder."""
    draw, class_names, size = SETS[name]
    out = root / f"{name}_{num_train}_{num_val}_s{seed}"
    if (out / "val_coco.json").exists():
        return out
    coco = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(class_names)]}
    for split, count, offset in (("train", num_train, 0), ("val", num_val, 1_000_000)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, boxes, labels = draw(seed=seed, index=offset + i, image_size=size)
            stem = f"{split}_{i:05d}"
            Image.fromarray(image).save(out / "images" / split / f"{stem}.png")
            lines = [
                f"{int(c)} {(b[0] + b[2]) / 2 / size:.6f} {(b[1] + b[3]) / 2 / size:.6f} "
                f"{(b[2] - b[0]) / size:.6f} {(b[3] - b[1]) / size:.6f}" for b, c in zip(boxes, labels)
            ]
            (out / "labels" / split / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
            if split == "val":
                coco["images"].append({"id": i, "file_name": f"{stem}.png", "width": size, "height": size})
                for b, c in zip(boxes, labels):
                    w, h = float(b[2] - b[0]), float(b[3] - b[1])
                    coco["annotations"].append({
                        "id": len(coco["annotations"]) + 1, "image_id": i, "category_id": int(c),
                        "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0,
                    })
    (out / "data.yaml").write_text(
        f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n"
        + "".join(f"  {i}: '{n}'\n" for i, n in enumerate(class_names))
    )
    (out / "val_coco.json").write_text(json.dumps(coco))
    return out


def image_size_of(name: str) -> int:
    return SETS[name][2]


def class_names_of(name: str) -> tuple[str, ...]:
    return SETS[name][1]


def crop_digit(*, seed: int, index: int, size: int = 32) -> tuple[np.ndarray, int]:
    """One digit centred on a cluttered ``size`` px crop, and its class (classification set)."""
    rng = np.random.default_rng([seed, index, 11])
    image = _background(rng, size)
    digit = int(rng.integers(0, 10))
    glyph = _digit_glyph(rng, digit, int(rng.integers(size // 2, size - 6)))
    h, w = glyph.shape
    y0, x0 = (size - h) // 2, (size - w) // 2
    region = image[y0: y0 + h, x0: x0 + w]
    colour = np.where(region.mean(axis=(0, 1)) > 128, rng.uniform(0, 70, 3), rng.uniform(185, 255, 3))
    region[:] = region * (1 - glyph[..., None]) + colour * glyph[..., None]
    return np.clip(image, 0, 255).astype(np.uint8), digit


def write_classification_set(root: Path, *, num_train: int, num_val: int, seed: int = 0, size: int = 32) -> Path:
    """Digit crops as ``{train,val}/<class>/`` plus ``{train,val}_flat/`` and ``{train,val}.csv``."""
    out = root / f"digits_cls_{num_train}_{num_val}_s{seed}"
    if (out / "val.csv").exists():
        return out
    for split, count, offset in (("train", num_train, 0), ("val", num_val, 1_000_000)):
        rows = ["image_id,class"]
        (out / f"{split}_flat").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, digit = crop_digit(seed=seed, index=offset + i, size=size)
            folder = out / split / DIGIT_NAMES[digit]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{split}_{i:05d}.png")
            (out / f"{split}_flat" / f"{split}_{i:05d}.png").symlink_to(folder / f"{split}_{i:05d}.png")
            rows.append(f"{split}_{i:05d}.png,{digit}")
        (out / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return out


def mean_box_size(out: Path) -> float:
    """Median sqrt(area) of the val boxes, in pixels (to document a set)."""
    coco = json.loads((out / "val_coco.json").read_text())
    return float(np.median([math.sqrt(a["area"]) for a in coco["annotations"]]))
