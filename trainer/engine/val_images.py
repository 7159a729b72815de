"""Drawing predictions on images (shared by `trainer predict` and the training run's validation
images), and the grid of validation images saved every `logging.val_images_every` epochs.

Images are uint8 (3, H, W) tensors. Images smaller than `MIN_DRAW_SIZE` are enlarged by an integer
factor (nearest) before drawing so that labels stay readable; boxes are scaled with them.
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

MIN_DRAW_SIZE = 256
DRAW_SCORE_THRESHOLD = 0.3  # detections below this score are kept in JSON but not drawn
IGNORE_INDEX = 255


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


# --- validation images during training ---------------------------------------------------------


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


def _val_batch(session: Any, count: int) -> dict[str, Any]:
    dataset = session.val_set
    samples = [dataset[(0, index)] for index in range(min(count, len(dataset)))]
    return session.task.collate(samples)


@torch.no_grad()
def validation_panels(*, session: Any, model: torch.nn.Module, count: int = 8) -> Panels:
    """The first validation images with the model's predictions (and the ground truth).

    classification: the top-1 class and score drawn (green when right, red when wrong), the true
    class as caption; detection: predicted boxes with score >= DRAW_SCORE_THRESHOLD in colour, true
    boxes in white; segmentation (half as many images): image | true mask | predicted mask."""
    task = session.recipe.task
    if task == "segmentation":
        count = max(1, count // 2)
    batch = _val_batch(session, count)
    images = batch["images"]
    was_training = model.training
    model.eval()
    outputs = model(session.prepare_batch(batch)["images"])
    model.train(was_training)
    outputs = {name: value.float() for name, value in outputs.items()}
    names = session.class_names
    if task == "classification":
        panels = Panels(columns=4)
        probabilities = outputs["logits"].softmax(dim=1).cpu()
        score, predicted = probabilities.max(dim=1)
        for image, truth, label, value in zip(images, batch["labels"].tolist(), predicted.tolist(), score.tolist()):
            colour = (80, 220, 80) if truth == label else (240, 80, 80)
            panels.add(draw_label(image, f"{names[label]} {value:.2f}", colour=colour), f"true: {names[truth]}")
    elif task == "detection":
        from trainer.tasks.detection_postprocess import detections_from_outputs

        panels = Panels(columns=4)
        options = session.recipe.model.postprocess
        detections = detections_from_outputs(
            outputs, image_size=tuple(images.shape[-2:]), score_threshold=options.score_threshold,
            nms_iou=options.nms_iou, max_detections=options.max_detections, pre_nms_top_k=options.pre_nms_top_k,
        )
        labels = batch.get("gt_eval_labels", batch["gt_labels"])
        for b, (image, found) in enumerate(zip(images, detections)):
            real = labels[b] >= 0
            truth = batch["gt_boxes"][b][real]
            with_truth = draw_boxes(image, truth, labels=None, colours=[(255, 255, 255)] * len(truth),
                                    width=1)
            scale = display_scale(*image.shape[-2:])
            drawn = draw_detections(with_truth, boxes=found["boxes"] * scale, scores=found["scores"],
                                    labels=found["labels"], class_names=names)
            shown = int((found["scores"] >= DRAW_SCORE_THRESHOLD).sum())
            panels.add(drawn, f"{int(real.sum())} true (white), {shown} predicted")
    else:
        panels = Panels(columns=3)
        logits = outputs["logits"]
        if tuple(logits.shape[-2:]) != tuple(images.shape[-2:]):
            logits = F.interpolate(logits, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)
        predicted = logits.argmax(dim=1).cpu()
        for image, truth, mask in zip(images, batch["labels"], predicted):
            panels.add(enlarge(image.cpu(), display_scale(*image.shape[-2:])), "image")
            panels.add(colour_mask(truth, names), "true mask")
            panels.add(colour_mask(mask, names), "predicted mask")
        colours = palette(len(names))
        panels.legend = [(name, (0, 0, 0) if name.lower() == "background" else colours[index])
                         for index, name in enumerate(names)] + [("ignored", (128, 128, 128))]
    return panels


def save_validation_grid(panels: Panels, path: Path, *, title: str) -> None:
    """The panels as one PNG (matplotlib, Agg), titled, with the legend under the title if any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    columns = min(panels.columns, len(panels.items))
    rows = math.ceil(len(panels.items) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.4 * rows + 0.6), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (image, caption) in zip(axes.flat, panels.items):
        axis.imshow(image.permute(1, 2, 0).numpy())
        axis.set_title(caption, fontsize=9)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1, 0.93 if panels.legend else 0.97))
    if panels.legend:
        handles = [Patch(facecolor=[c / 255 for c in colour], edgecolor="black", label=name)
                   for name, colour in panels.legend]
        figure.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), fontsize=8,
                      bbox_to_anchor=(0.5, 0.96), frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def grid_tensor(panels: Panels) -> torch.Tensor:
    """The panels side by side (uint8 (3, H, W)), for TensorBoard."""
    from torchvision.utils import make_grid

    height = max(image.shape[-2] for image, _ in panels.items)
    width = max(image.shape[-1] for image, _ in panels.items)
    resized = [F.interpolate(image[None].float(), size=(height, width), mode="nearest")[0] for image, _ in panels.items]
    return make_grid(resized, nrow=panels.columns, padding=4).to(torch.uint8)
