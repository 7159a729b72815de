"""Recipe augmentation lists -> `torchvision.transforms.v2` pipelines.

Each recipe entry is `{name: <registered name>, <option>: <value>, ...}`; each name is a factory
in `TRANSFORMS` with keyword-only options. Images stay uint8 (3, H, W) through the pipeline;
`tv_tensors` carry boxes and masks along (masks resize with nearest, pads fill masks with 255 =
ignore). Conventions:

- `resize.size`: an int resizes the shorter side (torchvision), `[h, w]` gives the exact size.
- `random_scale.scale: [lo, hi]`: resize both sides by one factor drawn uniformly from [lo, hi]
  (segmentation multi-scale training; follow it with `random_crop` ... `pad_if_needed: true`).
- `fill` options are pixel values 0..255; `random_erasing.value` too (or "random").
- `normalize` (mean/std in 0..1 units, ImageNet by default; values above 1 are read as 0..255
  units, the MMDetection habit) must be last and is not applied on the CPU: `build_transforms`
  returns it as `NormalizeParams`, and the engine normalises on the device (`trainer.ops.normalize_images`).
- For detection, `ClampBoundingBoxes` + `SanitizeBoundingBoxes` (dropping the labels and iscrowd
  of removed boxes) are appended unless the list already ends with `sanitize_boxes`.
- `trivial_augment`, `rand_augment` are classification-only (torchvision rejects boxes/masks).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from trainer.constants import IGNORE_INDEX
from trainer.constraints import AtLeastOne, NonNegative, Probability, Range
from trainer.data.edge_target import BoundaryTargetStep
from trainer.data.errors import DataError
from trainer.registry import TRANSFORMS, closest_name

Prob = Annotated[float, Probability]  # option constraints (trainer/constraints.py)
Amount = Annotated[float, NonNegative]
Count = Annotated[int, NonNegative]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
MASK_FILL = IGNORE_INDEX  # pixels that padding invents are ignored


@dataclass(frozen=True)
class NormalizeParams:
    """Per-channel mean and std in 0..1 units (as torchvision's Normalize on float images)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


def _fill(fill: float | list[float]) -> dict:
    return {tv_tensors.Image: fill, tv_tensors.Mask: MASK_FILL}


def _detection_targets(sample: Any) -> Any:
    """labels_getter for SanitizeBoundingBoxes: drop the label and iscrowd of each removed box."""
    if isinstance(sample, Mapping) and "iscrowd" in sample:
        return (sample["labels"], sample["iscrowd"])
    return sample["labels"] if isinstance(sample, Mapping) else None


class Letterbox(v2.Transform):
    """Resize keeping the aspect ratio to fit (h, w), then pad right and bottom to exactly (h, w)."""

    def __init__(self, size: tuple[int, int], fill: float | list[float] = 114) -> None:
        super().__init__()
        self.size = size
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        scale = min(self.size[0] / height, self.size[1] / width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        return {"new_size": [new_h, new_w], "padding": [0, 0, self.size[1] - new_w, self.size[0] - new_h]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask, tv_tensors.BoundingBoxes)):
            return inpt
        out = self._call_kernel(F.resize, inpt, size=params["new_size"], antialias=True)
        fill = MASK_FILL if isinstance(inpt, tv_tensors.Mask) else self.fill
        return self._call_kernel(F.pad, out, padding=params["padding"], fill=fill)


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from `scale` (both sides, aspect ratio kept); masks nearest.
    The official PIDNet / HRNet "multi-scale" training augmentation."""

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        self.scale = scale

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        factor = float(torch.empty(()).uniform_(self.scale[0], self.scale[1]))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)


class ImageRandomErasing(v2.RandomErasing):
    """RandomErasing on the image only (boxes and masks pass through); uint8 stays uint8."""

    def _call_kernel(self, functional: Any, inpt: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inpt, (tv_tensors.BoundingBoxes, tv_tensors.KeyPoints, tv_tensors.Mask)):
            return inpt
        return super()._call_kernel(functional, inpt, *args, **kwargs)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        image = next((x for x in flat_inputs if isinstance(x, tv_tensors.Image)), None)
        if self.value is None and params["v"] is not None and image is not None and image.dtype == torch.uint8:
            params["v"] = torch.randint(0, 256, params["v"].shape, dtype=torch.uint8)
        return params


def _size(size: int | list[int]) -> int | list[int]:
    return int(size) if isinstance(size, (int, float)) else [int(v) for v in size]


def _pair(size: int | list[int]) -> tuple[int, int]:
    size = _size(size)
    return (size, size) if isinstance(size, int) else (size[0], size[1])


@TRANSFORMS.register("resize")
def resize(*, size: int | list[int], max_size: int | None = None) -> v2.Transform:
    return v2.Resize(_size(size), max_size=max_size, antialias=True)


@TRANSFORMS.register("random_scale")
def random_scale(*, scale: list[float] = (0.5, 2.0)) -> v2.Transform:
    low, high = (float(v) for v in scale)
    if not 0 < low <= high:
        raise ValueError(f"scale must be [low, high] with 0 < low <= high, got {list(scale)}")
    return RandomScale((low, high))


@TRANSFORMS.register("letterbox")
def letterbox(*, size: int | list[int], fill: int | list[int] = 114) -> v2.Transform:
    return Letterbox(_pair(size), fill=fill)


@TRANSFORMS.register("random_resized_crop")
def random_resized_crop(
    *, size: int | list[int], scale: list[float] = (0.08, 1.0), ratio: list[float] = (3 / 4, 4 / 3)
) -> v2.Transform:
    return v2.RandomResizedCrop(_size(size), scale=tuple(scale), ratio=tuple(ratio), antialias=True)


@TRANSFORMS.register("center_crop")
def center_crop(*, size: int | list[int]) -> v2.Transform:
    return v2.CenterCrop(_size(size))


@TRANSFORMS.register("random_crop")
def random_crop(*, size: int | list[int], pad_if_needed: bool = False, fill: int | list[int] = 0) -> v2.Transform:
    return v2.RandomCrop(_size(size), pad_if_needed=pad_if_needed, fill=_fill(fill))


@TRANSFORMS.register("hflip")
def hflip(*, p: Prob = 0.5) -> v2.Transform:
    return v2.RandomHorizontalFlip(p=p)


@TRANSFORMS.register("vflip")
def vflip(*, p: Prob = 0.5) -> v2.Transform:
    return v2.RandomVerticalFlip(p=p)


@TRANSFORMS.register("color_jitter")
def color_jitter(
    *, brightness: Amount = 0.0, contrast: Amount = 0.0, saturation: Amount = 0.0,
    hue: Annotated[float, Range(ge=0, le=0.5)] = 0.0,
) -> v2.Transform:
    return v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)


@TRANSFORMS.register("photometric_distort")
def photometric_distort(*, p: Prob = 0.5) -> v2.Transform:
    return v2.RandomPhotometricDistort(p=p)


@TRANSFORMS.register("trivial_augment", tasks=("classification",))
def trivial_augment(*, num_magnitude_bins: Annotated[int, Range(ge=2)] = 31) -> v2.Transform:
    return v2.TrivialAugmentWide(num_magnitude_bins=num_magnitude_bins)


@TRANSFORMS.register("rand_augment", tasks=("classification",))
def rand_augment(*, num_ops: Count = 2, magnitude: Count = 9) -> v2.Transform:
    return v2.RandAugment(num_ops=num_ops, magnitude=magnitude)


@TRANSFORMS.register("random_erasing")
def random_erasing(
    *,
    p: Prob = 0.5,
    scale: list[float] = (0.02, 0.33),
    ratio: list[float] = (0.3, 3.3),
    value: float | list[float] | str = 0.0,
) -> v2.Transform:
    return ImageRandomErasing(p=p, scale=tuple(scale), ratio=tuple(ratio), value=value)


@TRANSFORMS.register("random_iou_crop", tasks=("detection",))
def random_iou_crop(
    *,
    min_scale: float = 0.3,
    max_scale: float = 1.0,
    min_aspect_ratio: float = 0.5,
    max_aspect_ratio: float = 2.0,
    trials: Annotated[int, AtLeastOne] = 40,
) -> v2.Transform:
    return v2.RandomIoUCrop(
        min_scale=min_scale,
        max_scale=max_scale,
        min_aspect_ratio=min_aspect_ratio,
        max_aspect_ratio=max_aspect_ratio,
        trials=trials,
    )


@TRANSFORMS.register("random_zoom_out")
def random_zoom_out(*, fill: int | list[int] = 0, side_range: list[float] = (1.0, 4.0), p: Prob = 0.5) -> v2.Transform:
    return v2.RandomZoomOut(fill=_fill(fill), side_range=tuple(side_range), p=p)


@TRANSFORMS.register("sanitize_boxes", tasks=("detection",))
def sanitize_boxes(*, min_size: Amount = 1.0, min_area: Amount = 1.0) -> v2.Transform:
    return v2.SanitizeBoundingBoxes(min_size=min_size, min_area=min_area, labels_getter=_detection_targets)


@TRANSFORMS.register("boundary_target", tasks=("segmentation",), provides=("boundary_labels",))
def boundary_target(*, border: int = 6, dilation: int = 4) -> BoundaryTargetStep:
    """PIDNet's official boundary target (`boundary_labels`), made from the label as it is at this
    point of the list: first = the whole label before augmentation, as the official pipeline."""
    return BoundaryTargetStep(border=border, dilation=dilation)


def provided_batch_fields(entries: list[dict]) -> set[str]:
    """The extra batch fields that the steps of a recipe list add (e.g. `boundary_labels`)."""
    names = [entry.get("name") for entry in (_plain(entries) or []) if isinstance(entry, Mapping)]
    return {field for name in names if name in TRANSFORMS for field in TRANSFORMS.meta(name).get("provides", ())}


@TRANSFORMS.register("normalize")
def normalize(*, mean: list[float] = IMAGENET_MEAN, std: list[float] = IMAGENET_STD) -> NormalizeParams:
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {list(mean)} and {list(std)}")
    if any(v <= 0 for v in std):
        raise ValueError(f"std must be positive, got {list(std)}")
    if max(mean + std) > 1.0:  # 0..255 units (e.g. [123.675, 116.28, 103.53])
        mean, std = tuple(v / 255.0 for v in mean), tuple(v / 255.0 for v in std)
    return NormalizeParams(mean=mean, std=std)


def _plain(value: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def build_transform(entry: Mapping, *, task: str | None = None, where: str = "augmentation") -> Any:
    """One recipe entry -> a v2 transform (or NormalizeParams for `normalize`)."""
    entry = _plain(entry)
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise DataError(f"{where}: expected a mapping with a 'name' key, got {entry!r}")
    name = entry["name"]
    factory = TRANSFORMS.get(name)  # UnknownNameError with a did-you-mean
    tasks = TRANSFORMS.meta(name).get("tasks")
    if task is not None and tasks is not None and task not in tasks:
        raise DataError(f"{where}: transform '{name}' works for {', '.join(tasks)} only, not {task}")
    options = {key: value for key, value in entry.items() if key != "name"}
    parameters = inspect.signature(factory).parameters
    for key in options:
        if key not in parameters:
            hint = closest_name(key, list(parameters))
            hint = f"; did you mean '{hint}'?" if hint else ""
            raise DataError(
                f"{where}: transform '{name}' has no option '{key}'{hint} (options: {', '.join(parameters)})"
            )
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in options:
            raise DataError(f"{where}: transform '{name}' needs option '{key}'")
    try:
        return factory(**options)
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: transform '{name}': {error}") from error


def build_transforms(
    entries: list[dict], *, task: str | None = None, where: str = "augmentation", sanitize_boxes: bool = False
) -> tuple[v2.Compose, NormalizeParams | None]:
    """The pipeline for a recipe list and the device-side normalisation (None if not given).
    `sanitize_boxes` (samples with boxes): boxes are clamped to the image and degenerate ones dropped
    at the end unless the list already ends with `sanitize_boxes`."""
    entries = list(_plain(entries) or [])
    built = [build_transform(entry, task=task, where=f"{where}[{i}]") for i, entry in enumerate(entries)]
    normalize_params = None
    if built and isinstance(built[-1], NormalizeParams):
        normalize_params = built.pop()
    if any(isinstance(item, NormalizeParams) for item in built):
        raise DataError(f"{where}: 'normalize' must be the last transform (it runs on the device, after the others)")
    if sanitize_boxes and not (built and isinstance(built[-1], v2.SanitizeBoundingBoxes)):
        built += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(labels_getter=_detection_targets)]
    return v2.Compose(built or [v2.Identity()]), normalize_params
