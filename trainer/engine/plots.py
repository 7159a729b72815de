"""PNG plots written into the run directory at the end of training (matplotlib, Agg backend):

- `plots/curves.png`: train loss parts, validation metrics and the learning rate per epoch,
  read from `metrics.csv`;
- `plots/confusion_matrix.png` (classification, segmentation): rows = ground truth, columns =
  prediction, colour = fraction of the row, numbers = counts (up to 25 classes);
- `plots/pr_curve.png` (detection): precision over COCO's 101 recall points at IoU 0.5, per class
  and the mean (from `CocoEvaluator.pr_curve()`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    """The rows of metrics.csv as floats (empty cells are NaN: a metric not computed that epoch)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{key: float(value) if value not in ("", None) else math.nan for key, value in row.items()} for row in rows]


def plot_curves(metrics_csv: Path, out: Path, *, title: str = "") -> Path | None:
    """Three panels: train loss parts, validation metrics, learning rate (x = epoch)."""
    rows = read_metrics_csv(metrics_csv) if metrics_csv.is_file() else []
    if not rows:
        return None
    plt = _pyplot()
    epochs = [row["epoch"] for row in rows]
    keys = list(rows[0]) + [k for row in rows for k in row if k not in rows[0]]
    losses = [k for k in dict.fromkeys(keys) if k.startswith("train/")]
    metrics = [k for k in dict.fromkeys(keys) if k.startswith("val/")]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = ((axes[0], losses, "train loss", "train/"), (axes[1], metrics, "validation metrics", "val/"))
    for axis, names, label, prefix in panels:
        for name in names:
            values = [row.get(name, math.nan) for row in rows]
            style = {"linewidth": 2.5, "color": "black"} if name.endswith("/total") else {}
            axis.plot(epochs, values, marker="o", markersize=3, label=name.removeprefix(prefix), **style)
        axis.set_title(label)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if names:
            axis.legend(fontsize=8)
        else:
            axis.text(0.5, 0.5, "none recorded", ha="center", va="center", transform=axis.transAxes)
    if metrics:
        axes[1].set_ylim(bottom=0)
    axes[2].plot(epochs, [row.get("lr", math.nan) for row in rows], marker="o", markersize=3)
    axes[2].set_title("learning rate (end of epoch)")
    axes[2].set_xlabel("epoch")
    axes[2].grid(alpha=0.3)
    for axis in axes:
        axis.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, out)


def plot_confusion_matrix(matrix: Any, class_names: list[str], out: Path, *, title: str = "confusion matrix") -> Path:
    """Row-normalised colours, raw counts written in the cells when there are few classes."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = len(class_names)
    side = min(4 + 0.45 * size, 24)
    figure, axis = plt.subplots(figsize=(side + 1.5, side))
    image = axis.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="fraction of the true class")
    axis.set_xticks(range(size), class_names, rotation=45 if size > 4 else 0, ha="right" if size > 4 else "center")
    axis.set_yticks(range(size), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if size <= 25:
        for row in range(size):
            for column in range(size):
                value = counts[row, column]
                text = f"{int(value)}" if value < 1e5 else f"{value:.1e}"
                axis.text(column, row, text, ha="center", va="center", fontsize=8,
                          color="white" if fractions[row, column] > 0.5 else "black")
    total = counts.sum()
    accuracy = np.trace(counts) / total if total > 0 else 0.0
    axis.set_title(f"{title} (accuracy {accuracy:.3f}, {int(total)} counted)")
    figure.tight_layout()
    return _save(figure, out)


def plot_pr_curve(curve: dict[str, np.ndarray], class_names: list[str], out: Path, *, title: str = "") -> Path:
    """Per-class precision-recall at IoU 0.5 (thin) and their mean (thick), AP50 in the legend."""
    plt = _pyplot()
    recall = np.asarray(curve["recall"])
    per_class = np.asarray(curve["precision_per_class"])
    figure, axis = plt.subplots(figsize=(7, 6))
    for index, name in enumerate(class_names):
        values = per_class[index]
        if np.isnan(values).all():
            continue
        axis.plot(recall, values, linewidth=1, label=f"{name} (AP50 {np.nanmean(values):.3f})")
    mean = np.asarray(curve["precision"])
    if not np.isnan(mean).all():
        axis.plot(recall, mean, linewidth=3, color="black", label=f"all classes (mAP50 {np.nanmean(mean):.3f})")
    else:
        axis.text(0.5, 0.5, "no detections or no ground truth", ha="center", va="center", transform=axis.transAxes)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.grid(alpha=0.3)
    axis.set_title(title or "precision-recall at IoU 0.5 (COCO, 101 recall points)")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    return _save(figure, out)


def confusion_matrix_of(evaluator: Any) -> Any | None:
    """The evaluator's (C, C) confusion matrix as numpy, or None if it keeps none.

    Under DDP this is a collective (the counts are summed over ranks): call it on every rank."""
    getter = getattr(evaluator, "confusion_matrix", None)
    if getter is None:
        return None
    return getter().cpu().numpy()


def _save(figure: Any, out: Path) -> Path:
    plt = _pyplot()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
