"""The built-in synthetic `shapes` data: coloured shapes on a noisy background.

Every sample is a pure function of (seed, index), so any worker, in any order, draws the same
image. One draw gives everything the three tasks need: the image, each shape's box and class, and
the per-pixel class mask (later shapes occlude earlier ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class ShapesSample:
    image: np.ndarray  # (H, W, 3) uint8
    boxes: np.ndarray  # (N, 4) float32, xyxy in pixels, box of the whole (unoccluded) shape
    labels: np.ndarray  # (N,) int64, index into SHAPE_NAMES
    mask: np.ndarray  # (H, W) uint8, 0 = background, 1 + label where a shape is visible


def _shape_mask(*, kind: int, cx: float, cy: float, radius: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    dx, dy = xs - cx, ys - cy
    if kind == 0:
        return dx * dx + dy * dy <= radius * radius
    if kind == 1:
        half = radius * 0.85
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if kind == 2:
        # upward triangle with apex at the top, base at the bottom of the bounding square
        top, bottom = -radius, radius
        inside_y = (dy >= top) & (dy <= bottom)
        half_width = (dy - top) / (bottom - top) * radius
        return inside_y & (np.abs(dx) <= half_width)
    return np.abs(dx) + np.abs(dy) <= radius


def _shape_box(*, kind: int, cx: float, cy: float, radius: float, size: int) -> np.ndarray:
    half = radius * 0.85 if kind == 1 else radius
    box = np.array([cx - half, cy - half, cx + half + 1, cy + half + 1], dtype=np.float32)
    return np.clip(box, 0, size)


def generate_sample(
    *,
    seed: int,
    index: int,
    image_size: int = 64,
    min_shapes: int = 1,
    max_shapes: int = 1,
    min_radius_fraction: float = 0.15,
    max_radius_fraction: float = 0.35,
) -> ShapesSample:
    """Draw sample `index` of the data set with this `seed`."""
    rng = np.random.default_rng([seed, index])
    size = image_size
    background = rng.integers(0, 256, size=3).astype(np.float32)
    image = background + rng.normal(0.0, 12.0, size=(size, size, 3))
    mask = np.zeros((size, size), dtype=np.uint8)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    count = int(rng.integers(min_shapes, max_shapes + 1))
    boxes, labels = [], []
    for _ in range(count):
        kind = int(rng.integers(0, len(SHAPE_NAMES)))
        radius = float(rng.uniform(min_radius_fraction, max_radius_fraction)) * size
        cx = float(rng.uniform(radius, size - radius))
        cy = float(rng.uniform(radius, size - radius))
        colour = rng.integers(0, 256, size=3).astype(np.float32)
        while np.abs(colour - background).sum() < 150:  # keep shapes visible against the background
            colour = rng.integers(0, 256, size=3).astype(np.float32)
        inside = _shape_mask(kind=kind, cx=cx, cy=cy, radius=radius, xs=xs, ys=ys)
        image[inside] = colour + rng.normal(0.0, 8.0, size=(int(inside.sum()), 3))
        mask[inside] = kind + 1
        boxes.append(_shape_box(kind=kind, cx=cx, cy=cy, radius=radius, size=size))
        labels.append(kind)
    return ShapesSample(
        image=np.clip(image, 0, 255).astype(np.uint8),
        boxes=np.stack(boxes).astype(np.float32) if boxes else np.zeros((0, 4), dtype=np.float32),
        labels=np.array(labels, dtype=np.int64),
        mask=mask,
    )
