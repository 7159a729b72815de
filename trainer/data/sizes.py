"""Will a split's images stack into batches? Checked while building, before anything is written:
images of different sizes need a fixed-size transform at the end of the split's augmentation
(else `torch.stack` fails on the first batch that mixes them, possibly epochs later).

Image sizes come cheaply from each data set's `image_sizes()`: (file, height, width) per image,
from the annotation file (COCO) or the image headers (PIL reads no pixels). A data set without
that method (a plugin) is not checked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trainer.data.errors import DataError

FIXED_SIZE = frozenset({"letterbox", "random_resized_crop", "center_crop", "random_crop"})
RANDOM_SIZE = frozenset({"random_scale", "random_iou_crop", "random_zoom_out"})
FIX_HINT = "{name: resize, size: [H, W]} or {name: letterbox, size: S}"


def size_effect(entry: Mapping[str, Any]) -> str:
    """What a transform entry does to the image size: "fixed" (the same for every image), "aspect"
    (the shorter side fixed: equal only for images of one aspect ratio), "random", or "keeps"."""
    name = entry.get("name")
    if name == "resize":
        size = entry.get("size")
        return "fixed" if isinstance(size, (list, tuple)) and len(size) == 2 else "aspect"
    if name in FIXED_SIZE:
        return "fixed"
    return "random" if name in RANDOM_SIZE else "keeps"


def final_effect(transforms: Iterable[Mapping[str, Any]]) -> tuple[str, str | None]:
    """The size effect of a whole list: that of its last entry that changes the size (and its name)."""
    effect, name = "keeps", None
    for entry in transforms:
        step = size_effect(entry)
        if step != "keeps":
            effect, name = step, str(entry.get("name"))
    return effect, name


def _first_mismatch(sizes: Iterable[tuple[str, int, int]], *, aspect: bool) -> tuple[tuple, tuple] | None:
    first = None
    for file, height, width in sizes:
        if first is None:
            first = (file, height, width)
        elif (height * first[2] != width * first[1]) if aspect else ((height, width) != first[1:]):
            return first, (file, height, width)
    return None


def check_batchable(dataset: Any, *, transforms: Iterable[Mapping[str, Any]], batch_size: int, section: str) -> None:
    """A DataError when batches of `batch_size` samples of `dataset` after `transforms` (the recipe
    section named `section`) would hold images of different sizes."""
    if batch_size <= 1:
        return
    effect, name = final_effect(list(transforms))
    if effect == "fixed":
        return
    if effect == "random":
        raise DataError(
            f"{section}: '{name}' gives every image its own random size and no fixed-size transform follows it, "
            f"so images cannot be stacked into batches; end {section} with {FIX_HINT}"
        )
    sizes = getattr(dataset, "image_sizes", None)
    if sizes is None:
        return
    mismatch = _first_mismatch(sizes(), aspect=effect == "aspect")
    if mismatch is not None:
        (file_a, h_a, w_a), (file_b, h_b, w_b) = mismatch
        differ = "have different aspect ratios" if effect == "aspect" else "differ in size"
        raise DataError(
            f"images {differ} ({file_a} is {w_a}x{h_a}, {file_b} is {w_b}x{h_b}) and {section} does not end with "
            f"a fixed-size transform, so they cannot be stacked into batches of {batch_size}; add {FIX_HINT} "
            f"at the end of {section}"
        )
