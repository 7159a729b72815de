"""YOLOX-style mosaic and mixup for detection, as a data set wrapper.

`MosaicMixupDataset(dataset, ...)` sits between a detection data set and the transforms: with
probability `mosaic_prob` a sample becomes a 2x2 mosaic of itself and three random others
(each resized to fit `output_size`, placed around a random centre of a 2x canvas filled with
`fill`), then zoomed by a factor drawn from `scale` and shifted by up to `translate` of the size
(YOLOX's random affine without rotation or shear), giving an `output_size` image. Within a
mosaic, with probability `mixup_prob`, another image (resized by a factor from `mixup_scale`,
maybe flipped, randomly cropped) is blended in 50/50 and its boxes added (YOLOX's mixup).
Boxes are clipped; boxes under 2 px or with less than 10% of their area left are dropped.
Otherwise the sample passes through unchanged, so the transforms must still bring every sample to
the training size. `image_id` is the first image's.

Randomness comes from torch's global RNG (seeded per worker by the DataLoader). `set_enabled`
writes a shared-memory flag, so it also reaches persistent DataLoader workers (for the epochs
after the loader's next `iter()`); YOLOX turns both off for the last epochs.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from trainer.data.errors import DataError


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _filter_boxes(boxes: torch.Tensor, *, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip XYXY boxes to the output; keep those >= 2 px with >= 10% of their area inside."""
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    clipped = boxes.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, height)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w >= 2) & (h >= 2) & (w * h >= 0.1 * area)
    return clipped[keep], keep


class MosaicMixupDataset(torch.utils.data.Dataset):
    """Detection data set wrapper adding mosaic and mixup; returns the detection sample contract."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        *,
        output_size: int | list[int] = 640,
        mosaic_prob: float = 1.0,
        mixup_prob: float = 1.0,
        scale: list[float] = (0.5, 1.5),
        mixup_scale: list[float] = (0.5, 1.5),
        translate: float = 0.1,
        fill: int = 114,
        enabled: bool = True,
    ) -> None:
        if getattr(dataset, "task", "detection") != "detection":
            raise DataError(f"mosaic/mixup are for detection data, not {dataset.task}")
        size = [int(output_size)] * 2 if isinstance(output_size, (int, float)) else [int(v) for v in output_size]
        if len(size) != 2 or min(size) < 4:
            raise DataError(f"mosaic: output_size must be an int or [h, w] of at least 4, got {output_size}")
        for name, value in (("mosaic_prob", mosaic_prob), ("mixup_prob", mixup_prob)):
            if not 0.0 <= value <= 1.0:
                raise DataError(f"mosaic: {name} must be within 0..1, got {value}")
        for name, pair in (("scale", scale), ("mixup_scale", mixup_scale)):
            if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
                raise DataError(f"mosaic: {name} must be [low, high] with 0 < low <= high, got {list(pair)}")
        self.dataset = dataset
        self.output_size = (size[0], size[1])
        self.mosaic_prob, self.mixup_prob = float(mosaic_prob), float(mixup_prob)
        self.scale, self.mixup_scale = tuple(scale), tuple(mixup_scale)
        self.translate, self.fill = float(translate), int(fill)
        self.task = "detection"
        self.class_names = getattr(dataset, "class_names", None)
        self._enabled = torch.tensor([bool(enabled)]).share_memory_()

    @property
    def enabled(self) -> bool:
        return bool(self._enabled[0])

    def set_enabled(self, enabled: bool) -> None:
        self._enabled[0] = bool(enabled)

    def __len__(self) -> int:
        return len(self.dataset)

    def _random_index(self) -> int:
        return int(torch.randint(len(self.dataset), ()))

    def __getitem__(self, index: int) -> dict:
        if not self.enabled or float(torch.rand(())) >= self.mosaic_prob:
            return self.dataset[index]
        first = self.dataset[index]
        image, boxes, labels, crowd = self._mosaic([first] + [self.dataset[self._random_index()] for _ in range(3)])
        if len(boxes) and float(torch.rand(())) < self.mixup_prob:
            image, boxes, labels, crowd = self._mixup(image, boxes, labels, crowd, self.dataset[self._random_index()])
        return {
            "image": tv_tensors.Image(image),
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=self.output_size),
            "labels": labels,
            "iscrowd": crowd,
            "image_id": first["image_id"],
        }

    @staticmethod
    def _fit(sample: dict, *, height: int, width: int, factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, float]:
        image = sample["image"].as_subclass(torch.Tensor)
        ratio = min(height / image.shape[-2], width / image.shape[-1]) * factor
        size = [max(1, round(image.shape[-2] * ratio)), max(1, round(image.shape[-1] * ratio))]
        resized = F.resize(image, size, antialias=True)
        boxes = sample["boxes"].as_subclass(torch.Tensor).float() * torch.tensor(
            [size[1] / image.shape[-1], size[0] / image.shape[-2]] * 2
        )
        return resized, boxes, ratio

    def _mosaic(self, samples: list[dict]) -> tuple[torch.Tensor, ...]:
        h, w = self.output_size
        canvas = torch.full((3, 2 * h, 2 * w), self.fill, dtype=torch.uint8)
        yc, xc = int(_uniform(0.5 * h, 1.5 * h)), int(_uniform(0.5 * w, 1.5 * w))
        all_boxes, all_labels, all_crowd = [], [], []
        for position, sample in enumerate(samples):
            image, boxes, _ = self._fit(sample, height=h, width=w)
            nh, nw = image.shape[-2:]
            x1 = max(xc - nw, 0) if position in (0, 2) else xc
            y1 = max(yc - nh, 0) if position in (0, 1) else yc
            x2 = xc if position in (0, 2) else min(xc + nw, 2 * w)
            y2 = yc if position in (0, 1) else min(yc + nh, 2 * h)
            sx = nw - (x2 - x1) if position in (0, 2) else 0  # where the visible part starts in the image
            sy = nh - (y2 - y1) if position in (0, 1) else 0
            canvas[:, y1:y2, x1:x2] = image[:, sy : sy + (y2 - y1), sx : sx + (x2 - x1)]
            all_boxes.append(boxes + torch.tensor([x1 - sx, y1 - sy] * 2, dtype=torch.float32))
            all_labels.append(sample["labels"])
            all_crowd.append(sample["iscrowd"])
        # zoom by s about the canvas centre, shift by t: the output shows a (h/s, w/s) window
        s = _uniform(*self.scale)
        ty, tx = _uniform(-self.translate, self.translate) * h, _uniform(-self.translate, self.translate) * w
        win_h, win_w = max(1, round(h / s)), max(1, round(w / s))
        y0, x0 = round(h - (h / 2 + ty) / s), round(w - (w / 2 + tx) / s)
        window = torch.full((3, win_h, win_w), self.fill, dtype=torch.uint8)
        cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y0 + win_h, 2 * h), min(x0 + win_w, 2 * w)
        if cy1 > cy0 and cx1 > cx0:
            window[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = canvas[:, cy0:cy1, cx0:cx1]
        image = F.resize(window, [h, w], antialias=True)
        boxes = (torch.cat(all_boxes) - torch.tensor([x0, y0] * 2, dtype=torch.float32)) * torch.tensor(
            [w / win_w, h / win_h] * 2
        )
        boxes, keep = _filter_boxes(boxes, height=h, width=w)
        return image, boxes, torch.cat(all_labels)[keep], torch.cat(all_crowd)[keep]

    def _mixup(self, image, boxes, labels, crowd, other: dict) -> tuple[torch.Tensor, ...]:
        h, w = self.output_size
        other_image, other_boxes, _ = self._fit(other, height=h, width=w, factor=_uniform(*self.mixup_scale))
        nh, nw = other_image.shape[-2:]
        if float(torch.rand(())) < 0.5:
            other_image = other_image.flip(-1)
            other_boxes = torch.stack(
                [nw - other_boxes[:, 2], other_boxes[:, 1], nw - other_boxes[:, 0], other_boxes[:, 3]], 1
            )
        canvas = torch.full((3, max(h, nh), max(w, nw)), self.fill, dtype=torch.uint8)
        canvas[:, :nh, :nw] = other_image
        oy = int(torch.randint(canvas.shape[-2] - h + 1, ()))
        ox = int(torch.randint(canvas.shape[-1] - w + 1, ()))
        patch = canvas[:, oy : oy + h, ox : ox + w]
        other_boxes, keep = _filter_boxes(
            other_boxes - torch.tensor([ox, oy] * 2, dtype=torch.float32), height=h, width=w
        )
        blended = (0.5 * image.float() + 0.5 * patch.float()).round().to(torch.uint8)
        return (
            blended,
            torch.cat([boxes, other_boxes]),
            torch.cat([labels, other["labels"][keep]]),
            torch.cat([crowd, other["iscrowd"][keep]]),
        )
