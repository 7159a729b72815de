"""The validation images of a run: a fixed sample of the validation set, drawn by the task
(`Task.draw_panels`) every `logging.val_images_every` epochs, saved as one PNG grid (and into
TensorBoard)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from trainer.tasks.drawing import Panels

if TYPE_CHECKING:
    from trainer.engine.session import Session

PANEL_SEED = 0  # the same validation images every epoch and every run


def panel_indices(size: int, count: int, *, seed: int = PANEL_SEED) -> list[int]:
    """`count` indices of a data set of `size`, drawn at random with a fixed seed, so that the panels show
    images from across the set (a sorted image folder would otherwise give one class), in ascending order."""
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(size, generator=generator)[: min(count, size)].tolist())


@torch.no_grad()
def validation_panels(*, session: Session, model: torch.nn.Module) -> Panels:
    """The task's drawing of `Task.panel_images` validation images with `model`'s eval predictions."""
    task = session.task
    dataset = session.val_set
    batch = task.collate([dataset[(0, index)] for index in panel_indices(len(dataset), task.panel_images)])
    was_training = model.training
    model.eval()
    outputs = model(session.prepare_batch(batch)["images"])
    model.train(was_training)
    outputs = {name: value.float() for name, value in outputs.items()}
    return task.draw_panels(batch=batch, outputs=outputs, class_names=session.class_names,
                            postprocess=session.recipe.model.postprocess)


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
