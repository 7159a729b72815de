"""`mask_folder`: segmentation data as `root/images/<split>/` + `root/masks/<split>/`, or
`root/<split>/images/` + `root/<split>/masks/`, or explicit `images_dir` + `masks_dir`.

Class names: `class_names` (a list, index 0 first, or a class list file), else `root/classes.txt`.

Images and masks are paired by file stem (relative path without suffix), never by sort order:
`images/train/a/001.jpg` <-> `masks/train/a/001.png`. A mask is either
- a single-channel PNG of class indices (palette "P" mode PNGs give their indices), `ignore_index`
  (default 255) = ignore, mapped to 255 (the pipeline's ignore id: crop padding, losses and
  metrics use 255) when the files use another value; an RGB mask whose three channels are equal
  counts as single-channel; or
- an RGB PNG mapped through `palette` (palette[i] = [r, g, b] of class i); a colour that is not
  in the palette is a DataError.
Masks are checked when loaded: size different from the image, or a class id >= len(class_names)
other than `ignore_index`, is a DataError naming the file. Samples' `image_id` is the index.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from trainer.constants import IGNORE_INDEX
from trainer.data.class_names import read_class_file, resolve_class_names
from trainer.data.errors import DataError
from trainer.data.image_folder import IMAGE_EXTENSIONS, header_sizes, list_images, read_rgb_image
from trainer.data.layout import split_folders
from trainer.registry import DATASETS

MASK_EXTENSIONS: tuple[str, ...] = (".png", ".bmp", ".tif", ".tiff")
PIPELINE_IGNORE = IGNORE_INDEX  # ignored pixels from here on (transforms pad masks with it; losses, metrics skip it)


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for path in files:
        stem = path.relative_to(folder).with_suffix("").as_posix()
        if stem in stems:
            raise DataError(f"mask_folder: two files with the same stem '{stem}': {stems[stem]} and {path}")
        stems[stem] = path
    return stems


def read_mask(path: Path) -> np.ndarray:
    """The mask file as an integer array: (H, W) for index masks, (H, W, 3) for colour masks."""
    from PIL import Image

    try:
        with Image.open(path) as pil:
            if pil.mode in ("P", "L", "I", "I;16", "1"):
                array = np.asarray(pil)
            else:
                array = np.asarray(pil.convert("RGB"))
    except FileNotFoundError as error:
        raise DataError(f"mask file not found: {path}") from error
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot decode mask {path}: {error}") from error
    return array.astype(np.int64)


def _check_palette(palette: list[list[int]] | None, *, classes: int) -> np.ndarray | None:
    if palette is None:
        return None
    if len(palette) != classes or any(len(colour) != 3 for colour in palette):
        raise DataError(f"mask_folder: palette needs one [r, g, b] per class ({classes}), got {palette}")
    colours = [tuple(int(v) for v in colour) for colour in palette]
    if len(set(colours)) != len(colours):
        raise DataError(f"mask_folder: palette has repeated colours: {palette}")
    return np.array(palette, dtype=np.int64)


def _folders(split: str, *, root: Path | None, images_dir: str | None, masks_dir: str | None) -> tuple[Path, Path]:
    """The split's image and mask folders: explicit `images_dir` / `masks_dir`, else found under root."""
    if images_dir is None or masks_dir is None:
        if root is None:
            raise DataError("mask_folder: give root (with images/<split>/ and masks/<split>/), or images_dir and "
                            "masks_dir")
        found_images, found_masks = split_folders(root, split, kind="images", companion="masks", fmt="mask_folder")
    image_dir = Path(images_dir) if images_dir is not None else found_images
    mask_dir = Path(masks_dir) if masks_dir is not None else found_masks
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(f"mask_folder: folder not found: {folder}")
    return image_dir, mask_dir


def _class_names(class_names: list[str] | str | None, *, root: Path | None) -> list[str]:
    names = resolve_class_names(class_names, root=root)
    if names is not None:
        return names
    if root is not None and (root / "classes.txt").is_file():
        return read_class_file(root / "classes.txt")
    raise DataError("mask_folder: no class names: set class_names (a list, index 0 first, or a class list file), "
                    "or put classes.txt in root")


def _pairs(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs by relative path without suffix; unpaired files are one DataError."""
    images = _by_stem([p for p in list_images(image_dir) if p.suffix.lower() in IMAGE_EXTENSIONS], image_dir)
    masks = _by_stem([p for p in list_images(mask_dir) if p.suffix.lower() in MASK_EXTENSIONS], mask_dir)
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask or no_image:
        problems = [f"image {images[stem]} has no mask in {mask_dir}" for stem in no_mask[:5]]
        problems += [f"mask {masks[stem]} has no image in {image_dir}" for stem in no_image[:5]]
        count = len(no_mask) + len(no_image)
        raise DataError(f"mask_folder: {count} unpaired file(s) (pairing is by file stem): " + "; ".join(problems))
    if not images:
        raise DataError(f"mask_folder: no images in {image_dir}")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


@DATASETS.register("mask_folder", tasks=("segmentation",))
class MaskFolderDataset(torch.utils.data.Dataset):
    """Images + per-pixel class masks paired by stem; segmentation samples."""

    def __init__(
        self,
        *,
        task: str,
        split: str,
        root: str | None = None,
        images_dir: str | None = None,
        masks_dir: str | None = None,
        class_names: list[str] | str | None = None,
        palette: list[list[int]] | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if task != "segmentation":
            raise DataError(f"mask_folder: holds segmentation data, not '{task}'")
        base = None if root is None else Path(root)
        self.task, self.split = task, split
        self.class_names: list[str] = _class_names(class_names, root=base)
        self.palette = _check_palette(palette, classes=len(self.class_names))
        self.ignore_index = ignore_index
        image_dir, mask_dir = _folders(split, root=base, images_dir=images_dir, masks_dir=masks_dir)
        self.pairs: list[tuple[Path, Path]] = _pairs(image_dir, mask_dir)

    def image_sizes(self) -> Iterator[tuple[str, int, int]]:
        """(file, height, width) of every image, from the file headers."""
        return header_sizes(image for image, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def _to_classes(self, raw: np.ndarray, path: Path) -> np.ndarray:
        if raw.ndim == 3:
            if self.palette is None:
                if (raw[..., 0] == raw[..., 1]).all() and (raw[..., 0] == raw[..., 2]).all():
                    raw = raw[..., 0]
                else:
                    raise DataError(
                        f"{path}: colour mask but no palette given (set data palette, or save class-index PNGs)"
                    )
            else:
                codes = raw[..., 0] * 65536 + raw[..., 1] * 256 + raw[..., 2]
                palette_codes = self.palette[:, 0] * 65536 + self.palette[:, 1] * 256 + self.palette[:, 2]
                order = np.argsort(palette_codes)
                position = np.clip(np.searchsorted(palette_codes[order], codes), 0, len(order) - 1)
                found = palette_codes[order][position] == codes
                if not found.all():
                    y, x = np.argwhere(~found)[0]
                    raise DataError(f"{path}: colour {raw[y, x].tolist()} at (x={x}, y={y}) is not in the palette")
                return order[position]
        bad = (raw >= len(self.class_names)) & (raw != self.ignore_index) | (raw < 0)
        if bad.any():
            values = sorted(set(np.unique(raw[bad]).tolist()))[:5]
            raise DataError(
                f"{path}: class id(s) {values} outside 0..{len(self.class_names) - 1} "
                f"({len(self.class_names)} classes; {self.ignore_index} = ignore)"
            )
        if self.ignore_index != PIPELINE_IGNORE:
            raw = np.where(raw == self.ignore_index, PIPELINE_IGNORE, raw)
        return raw

    def __getitem__(self, index: int) -> dict:
        image_path, mask_path = self.pairs[index]
        image = read_rgb_image(image_path)
        mask = self._to_classes(read_mask(mask_path), mask_path)
        if tuple(mask.shape[:2]) != tuple(image.shape[-2:]):
            raise DataError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
                f"{image.shape[-1]}x{image.shape[-2]}"
            )
        return {
            "image": image,
            "mask": tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask))),
            "image_id": index,
        }
