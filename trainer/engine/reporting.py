"""What a run shows and keeps: progress (rich bar on a terminal, plain lines otherwise), the
eval table, `metrics.csv` and `train.log`."""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

console = Console(stderr=False, highlight=False)


def get_logger(run_dir: Path | None) -> logging.Logger:
    logger = logging.getLogger("trainer.run")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if run_dir is not None:
        handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
    return logger


def say(logger: logging.Logger, message: str) -> None:
    """Print to the console and write to train.log."""
    console.print(message, markup=False)
    logger.info(message)


def format_parts(parts: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4f}" for name, value in parts.items())


class EpochProgress:
    """A rich progress bar on a terminal; otherwise a log line every `log_every` steps."""

    def __init__(self, *, mode: str, total: int, epoch: int, epochs: int, logger: logging.Logger) -> None:
        use_bar = mode == "bar" or (mode == "auto" and sys.stdout.isatty())
        self.mode = "none" if mode == "none" else ("bar" if use_bar else "lines")
        self.total, self.epoch, self.epochs, self.logger = total, epoch, epochs, logger
        self.start = time.perf_counter()
        self.progress: Progress | None = None
        if self.mode == "bar":
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console, transient=True,
            )
            self.progress.start()
            self.task_id = self.progress.add_task("train", total=total, epoch=f"{epoch + 1}/{epochs}", status="")

    def update(self, *, step: int, parts: dict[str, float] | None, lr: float, images: int) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        status = f"{format_parts(parts) if parts else ''} lr={lr:.3g} {images / elapsed:.1f} img/s"
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step, status=status)
        elif self.mode == "lines" and parts is not None:
            eta = elapsed / max(step, 1) * (self.total - step)
            say(self.logger, f"epoch {self.epoch + 1}/{self.epochs} step {step}/{self.total} {status} eta {eta:.0f}s")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def metrics_table(metrics: dict[str, float], *, title: str) -> Table:
    """Metric names and values; the table is as wide as its title, so the title stays on one line
    (on a console that wide), and is shown as plain text (a path's brackets are not markup)."""
    table = Table(title=Text(title), min_width=len(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    return table


class MetricsCsv:
    """One row per epoch; the header is the union of every row's keys, in order of appearance.

    The rows also live in the checkpoint, so a resumed run rewrites the file from there.
    """

    def __init__(self, path: Path, *, rows: list[dict[str, Any]]) -> None:
        self.path = path
        if rows:
            self.write(rows)

    def write(self, rows: list[dict[str, Any]]) -> None:
        header: list[str] = []
        for row in rows:
            header += [key for key in row if key not in header]
        temporary = self.path.with_suffix(".csv.tmp")
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        temporary.replace(self.path)
