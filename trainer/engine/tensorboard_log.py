"""TensorBoard logging (`logging.tensorboard: true`): scalars and validation images in RUN/tensorboard/.

Scalars: `loss/<part>` every `logging.log_every` steps (x = optimizer step), and per epoch (x =
epoch) `lr`, `epoch/train/<part>` and `val/<metric>`; validation images under `val_images`.
Only rank 0 writes. View with `tensorboard --logdir RUN_DIR/tensorboard`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from trainer.recipe import RecipeError, RecipeIssue


class TensorboardLog:
    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise RecipeError([RecipeIssue(
                ("logging", "tensorboard"),
                f"logging.tensorboard is true but TensorBoard cannot be imported ({error}); "
                "install it (pip install tensorboard, or the trainer[tensorboard] extra) or set it to false",
            )]) from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def steps(self, *, step: int, parts: dict[str, float], lr: float) -> None:
        for name, value in parts.items():
            if math.isfinite(value):
                self.writer.add_scalar(f"loss/{name}", value, step)
        self.writer.add_scalar("lr/step", lr, step)

    def epoch(self, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key == "epoch" or not isinstance(value, (int, float)):
                continue
            name = f"epoch/{key}" if key.startswith("train/") else key
            self.writer.add_scalar(name, value, epoch)
        self.writer.flush()

    def image(self, tag: str, image: torch.Tensor, *, epoch: int) -> None:
        self.writer.add_image(tag, image, epoch)  # uint8 (3, H, W)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(run_dir: Path, *, enabled: bool) -> TensorboardLog | None:
    return TensorboardLog(run_dir / "tensorboard") if enabled else None
