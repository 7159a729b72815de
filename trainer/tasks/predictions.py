"""What `trainer predict` hands a task's prediction writer, the writer's common part, and the
mapping of network-input coordinates back to the original image."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.constants import IGNORE_INDEX


@dataclass(frozen=True)
class PredictedImage:
    """One input image: `tensor` is the network input (after the val transforms), `image` the
    original uint8 (3, H, W), `region` where the original's corners end up in the input (x0, y0, x1, y1)."""

    index: int
    path: Path
    name: str
    tensor: torch.Tensor
    region: tuple[float, float, float, float]
    image: torch.Tensor


class PredictionWriter(ABC):
    """Writes `predictions.json` (one record per line) and the task's drawn images into `out_dir`."""

    def __init__(self, *, out_dir: Path, class_names: list[str], postprocess: Any, top_k: int,
                 draw_threshold: float) -> None:
        self.out_dir, self.names, self.postprocess = out_dir, list(class_names), postprocess
        self.top_k, self.draw_threshold = top_k, draw_threshold
        self.records: list[Any] = []

    @abstractmethod
    def add(self, items: list[PredictedImage], outputs: dict[str, torch.Tensor]) -> list[str]:
        """Records and draws the predictions for a batch of same-size inputs; one summary line per image."""

    def image_path(self, name: str, folder: str = "images") -> Path:
        return self.out_dir / folder / f"{name}.png"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def write_json(self, name: str, payload: Any) -> None:
        (self.out_dir / name).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")

    def finish(self) -> None:  # one record per line: readable, and still one JSON document
        text = "[\n" + ",\n".join(json.dumps(record) for record in self.records) + "\n]\n"
        (self.out_dir / "predictions.json").write_text(text if self.records else "[]\n", encoding="utf-8")


def boxes_to_original(boxes: torch.Tensor, region: tuple, height: int, width: int) -> torch.Tensor:
    """XYXY boxes in network-input pixels -> the original image's pixels, clipped to it."""
    x0, y0, x1, y1 = region
    sx, sy = width / max(x1 - x0, 1e-6), height / max(y1 - y0, 1e-6)
    mapped = boxes.float().clone()
    mapped[:, 0::2] = ((mapped[:, 0::2] - x0) * sx).clamp(0, width)
    mapped[:, 1::2] = ((mapped[:, 1::2] - y0) * sy).clamp(0, height)
    return mapped


def mask_to_original(mask: torch.Tensor, region: tuple, height: int, width: int) -> torch.Tensor:
    """(h, w) class mask of the network input -> (height, width), nearest; IGNORE_INDEX outside the input."""
    x0, y0, x1, y1 = region
    in_h, in_w = mask.shape
    xs = torch.floor(x0 + (torch.arange(width, dtype=torch.float64) + 0.5) * (x1 - x0) / width).long()
    ys = torch.floor(y0 + (torch.arange(height, dtype=torch.float64) + 0.5) * (y1 - y0) / height).long()
    valid = ((ys >= 0) & (ys < in_h))[:, None] & ((xs >= 0) & (xs < in_w))[None, :]
    picked = mask[ys.clamp(0, in_h - 1)][:, xs.clamp(0, in_w - 1)]
    return torch.where(valid, picked, torch.full_like(picked, IGNORE_INDEX))
