"""Drawing predictions on images, shared by `trainer predict` and the validation panels of a run.

Images are uint8 (3, H, W) tensors. Images smaller than `MIN_DRAW_SIZE` are enlarged by an integer
factor (nearest) before drawing so that labels stay readable; boxes are scaled with them.
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from trainer.constants import IGNORE_INDEX

MIN_DRAW_SIZE = 256
DRAW_SCORE_THRESHOLD = 0.3  # detections below this score are kept in JSON but not drawn


def palette(count: int) -> list[tuple[int, int, int]]:
    """`count` distinct, saturated colours (golden-ratio hues), the same for every call."""
    colours = []
    for index in range(count):
        hue = (index * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


@lru_cache(maxsize=1)
def font_path() -> str | None:
    """DejaVu Sans from matplotlib's data (a dependency), for scalable label text."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return str(path) if path.is_file() else None
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None


def display_scale(height: int, width: int) -> int:
    """Integer factor that brings the longer side to at least MIN_DRAW_SIZE pixels."""
    return max(1, math.ceil(MIN_DRAW_SIZE / max(height, width, 1)))


def enlarge(image: torch.Tensor, scale: int) -> torch.Tensor:
    if scale == 1:
        return image
    return F.interpolate(image[None].float(), scale_factor=scale, mode="nearest")[0].to(torch.uint8)


def _font_size(height: int, width: int) -> int:
    return max(10, min(height, width) // 20)


def draw_label(image: torch.Tensor, text: str, *, colour: tuple[int, int, int] = (255, 255, 255)) -> torch.Tensor:
    """`text` in a dark band at the top of the (enlarged) image."""
    from PIL import Image, ImageDraw, ImageFont

    image = enlarge(image.cpu(), display_scale(*image.shape[-2:]))
    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    size = _font_size(pil.height, pil.width)
    font = ImageFont.truetype(font_path(), size) if font_path() else ImageFont.load_default()
    draw = ImageDraw.Draw(pil)
    _, _, right, bottom = draw.textbbox((4, 2), text, font=font)
    draw.rectangle((0, 0, min(pil.width, right + 4), bottom + 4), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=colour, font=font)
    return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)


def draw_boxes(
    image: torch.Tensor, boxes: torch.Tensor, *, labels: list[str] | None, colours: list[tuple[int, int, int]],
    width: int | None = None,
) -> torch.Tensor:
    """Boxes (N, 4) XYXY in `image`'s pixels, each with its label and colour (image enlarged if small)."""
    image = image.cpu()
    scale = display_scale(*image.shape[-2:])
    image = enlarge(image, scale)
    if len(boxes) == 0:
        return image
    height, width_px = image.shape[-2:]
    return draw_bounding_boxes(
        image, boxes.detach().float().cpu() * scale, labels=labels, colors=colours,
        width=width or max(1, min(height, width_px) // 128), font=font_path(), font_size=_font_size(height, width_px),
        fill_labels=labels is not None, label_colors="black" if labels is not None else None,
    )


def draw_detections(
    image: torch.Tensor, *, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, class_names: list[str],
    score_threshold: float = DRAW_SCORE_THRESHOLD,
) -> torch.Tensor:
    keep = scores.detach().cpu() >= score_threshold
    colours = palette(len(class_names))
    kept_labels = labels.detach().cpu()[keep].tolist()
    kept_scores = scores.detach().cpu()[keep].tolist()
    return draw_boxes(
        image, boxes.detach().cpu()[keep],
        labels=[f"{class_names[c]} {s:.2f}" for c, s in zip(kept_labels, kept_scores)],
        colours=[colours[c] for c in kept_labels],
    )


def draw_mask(image: torch.Tensor, mask: torch.Tensor, *, class_names: list[str], alpha: float = 0.5) -> torch.Tensor:
    """Colour overlay of a (H, W) class mask; background and ignored pixels are left as they are."""
    image = image.cpu()
    mask = mask.detach().cpu()
    scale = display_scale(*image.shape[-2:])
    image = enlarge(image, scale)
    if scale > 1:
        mask = F.interpolate(mask[None, None].float(), scale_factor=scale, mode="nearest")[0, 0].long()
    colours = palette(len(class_names))
    shown = [c for c in range(len(class_names)) if class_names[c].lower() != "background"]
    present = [c for c in shown if bool((mask == c).any())]
    if not present:
        return image
    masks = torch.stack([mask == c for c in present])
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=[colours[c] for c in present])


def save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.detach().cpu()
    if array.ndim == 3:
        Image.fromarray(array.permute(1, 2, 0).contiguous().numpy()).save(path)
    else:
        Image.fromarray(array.to(torch.uint8).numpy()).save(path)


def colour_mask(mask: torch.Tensor, class_names: list[str]) -> torch.Tensor:
    """(H, W) class mask -> uint8 (3, H', W') colours (enlarged if small); background black, ignored grey."""
    mask = mask.detach().cpu().long()
    colours = torch.tensor(palette(len(class_names)) + [(0, 0, 0)] * (256 - len(class_names)), dtype=torch.uint8)
    for index, name in enumerate(class_names):
        if name.lower() == "background":
            colours[index] = torch.tensor((0, 0, 0), dtype=torch.uint8)
    colours[IGNORE_INDEX] = torch.tensor((128, 128, 128), dtype=torch.uint8)
    image = colours[mask.clamp(0, 255)].permute(2, 0, 1).contiguous()
    return enlarge(image, display_scale(*image.shape[-2:]))


class Panels:
    """Drawn images with captions, laid out `columns` to a row, with an optional colour legend."""

    def __init__(self, columns: int = 4) -> None:
        self.items: list[tuple[torch.Tensor, str]] = []
        self.columns = columns
        self.legend: list[tuple[str, tuple[int, int, int]]] = []

    def add(self, image: torch.Tensor, caption: str) -> None:
        self.items.append((image, caption))
