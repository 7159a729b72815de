"""`image_folder`: classification data laid out as `root/<class name>/<image>`.

If `root/<split>` holds class folders (ImageNet layout: `root/train/<class>/...`,
`root/val/<class>/...`) it is used; otherwise `root` itself holds the class folders (point each
split at its own root); a class folder may be named like a split (`root/train/*.png` is the class
`train`). Class indices follow the sorted folder names unless `class_names` (a list, or a class
list file with one name per line) fixes the order (then every folder must be one of them; a
listed class without a folder simply has no images).

Also home of `read_rgb_image`, the one image decoder every file-based data set uses.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torchvision import io as tvio
from torchvision import tv_tensors

from trainer.data.class_names import resolve_class_names
from trainer.data.errors import DataError
from trainer.registry import DATASETS

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_TORCHVISION_DECODES = (".jpg", ".jpeg", ".png", ".webp", ".gif")


def _short_reason(error: BaseException) -> str:
    # torchvision's C++ errors start with "function, /path/file.cpp:123, "; keep the reason only
    text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return re.sub(r"^.*\.cpp:\d+,\s*", "", text)


def _decode_torchvision(path: Path) -> torch.Tensor:
    # torchvision.io's decoders are deprecated since 0.29 (in favour of torchcodec) but remain the
    # fastest here (about 4x PIL for JPEG); silence that notice, and fall back to PIL once gone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        image = tvio.decode_image(tvio.read_file(str(path)), mode=tvio.ImageReadMode.RGB)
    return image[0] if image.ndim == 4 else image  # animated GIF: the first frame


def _decode_pil(path: Path) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as pil:
            array = np.asarray(pil.convert("RGB"))
    except Image.DecompressionBombError as error:  # not an OSError
        raise ValueError(str(error)) from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_rgb_image(path: str | os.PathLike) -> tv_tensors.Image:
    """Decode an image file as a uint8 (3, H, W) RGB `tv_tensors.Image`.

    JPEG/PNG/WebP/GIF go through `torchvision.io.decode_image`; other formats (BMP, TIFF) through
    PIL. EXIF orientation is not applied: pixels are used as stored, which is what annotation
    files (COCO, YOLO) refer to. A missing, truncated or undecodable file is a DataError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    try:
        if path.suffix.lower() in _TORCHVISION_DECODES and hasattr(tvio, "decode_image"):
            image = _decode_torchvision(path)
        else:
            image = _decode_pil(path)
    except (RuntimeError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"cannot decode image {path}: {_short_reason(error)}") from error
    if image.dtype != torch.uint8:  # 16-bit PNGs decode as uint16: rescale to 0..255
        image = (image.to(torch.int32) // 257).to(torch.uint8)
    return tv_tensors.Image(image)


def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file from its header only (nothing is decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as pil:
            width, height = pil.size
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {_short_reason(error)}") from None
    return int(height), int(width)


def header_sizes(paths: Iterable[Path]) -> Iterator[tuple[str, int, int]]:
    """(file, height, width) per image from its header; unreadable files are skipped here (decoding
    them reports them, naming the file)."""
    for path in paths:
        try:
            yield (str(path), *header_size(path))
        except DataError:
            continue


def list_images(directory: Path) -> list[Path]:
    """Image files under `directory` (recursive), sorted by path."""
    try:
        files = [p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    except OSError as error:  # unreadable, or changing while listed
        raise DataError(f"cannot list the images in {directory}: {error.strerror or error}") from None
    return sorted(files)


def _is_split_folder(folder: Path, *, split: str, class_names: list[str] | None) -> bool:
    """`root/<split>` is the ImageNet-style split folder unless it is a class folder: named in
    `class_names`, or holding image files itself rather than class folders."""
    if not folder.is_dir() or (class_names is not None and split in class_names):
        return False
    entries = list(folder.iterdir())
    has_images = any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in entries)
    has_folders = any(p.is_dir() and not p.name.startswith(".") for p in entries)
    return has_folders and not has_images


@DATASETS.register("image_folder", tasks=("classification",))
class ImageFolderDataset(torch.utils.data.Dataset):
    """Images in one folder per class; sample = {"image", "label"}."""

    def __init__(self, *, task: str, split: str, root: str, class_names: list[str] | str | None = None) -> None:
        if task != "classification":
            raise DataError(f"image_folder: holds classification data, not '{task}'")
        base = Path(root)
        if not base.is_dir():
            raise DataError(f"image_folder: root directory not found: {base}")
        class_names = resolve_class_names(class_names, root=base)
        if _is_split_folder(base / split, split=split, class_names=class_names):
            base = base / split
        folders = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DataError(f"image_folder: no class folders in {base} (expected {base}/<class name>/<image>)")
        if class_names is None:
            class_names = folders
        else:
            unknown = [name for name in folders if name not in class_names]
            if unknown:
                raise DataError(f"image_folder: folders {unknown} in {base} are not in class_names {class_names}")
        self.task = task
        self.split = split
        self.root = base
        self.class_names: list[str] = list(class_names)
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.class_names):
            if (base / name).is_dir():
                self.samples.extend((path, label) for path in list_images(base / name))
        if not self.samples:
            raise DataError(
                f"image_folder: no images in {base} (looked for {', '.join(IMAGE_EXTENSIONS)} in {base}/<class>/)"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def image_sizes(self) -> Iterator[tuple[str, int, int]]:
        """(file, height, width) of every image, from the file headers."""
        return header_sizes(path for path, _ in self.samples)

    def __getitem__(self, index: int) -> dict:
        path, label = self.samples[index]
        return {"image": read_rgb_image(path), "label": label}
