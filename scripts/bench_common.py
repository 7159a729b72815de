"""Shared helpers of the bench_*.py scripts: recipes per task, A/B timing, small tables.

Timings on a shared machine are noisy, so every comparison runs A and B alternately in one
process (A B, B A, A B, ...) for several rounds and reports the median of the per-round ratios.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# One shipped shapes recipe per task, with overrides that keep each measurement to seconds on a CPU.
TASK_RECIPES: dict[str, dict[str, Any]] = {
    "classification": {
        "recipe": "recipes/classification/resnet18_shapes.yaml",
        "overrides": ["training.batch_size=16", "data.train.num_images=512", "data.val.num_images=128"],
    },
    "detection": {
        "recipe": "recipes/detection/yolox_nano_shapes.yaml",
        "overrides": ["training.batch_size=8", "data.train.num_images=256", "data.val.num_images=128"],
    },
    "segmentation": {
        "recipe": "recipes/segmentation/pidnet_s_shapes.yaml",
        "overrides": ["training.batch_size=8", "data.train.num_images=256", "data.val.num_images=128"],
    },
}


def quick() -> bool:
    """BENCH_QUICK=1 shortens every script (fewer rounds) for a smoke run."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def available_tasks(selected: list[str] | None = None) -> list[tuple[str, Path, list[str]]]:
    """(task, recipe path, overrides) for each task whose shipped recipe exists; others are reported."""
    found = []
    for task, entry in TASK_RECIPES.items():
        if selected and task not in selected:
            continue
        path = ROOT / entry["recipe"]
        if path.is_file():
            found.append((task, path, list(entry["overrides"])))
        else:
            print(f"[skip] {task}: {entry['recipe']} not found")
    return found


def load_session(path: Path, overrides: list[str], *, for_training: bool = True, num_workers: int | None = None):
    """The trainer's own Session for a shipped recipe (CPU), as `trainer train` builds it."""
    import torch

    from trainer.engine.device import seed_everything
    from trainer.engine.session import build_session
    from trainer.recipe import load_recipe

    extra = [] if num_workers is None else [f"environment.num_workers={num_workers}"]
    loaded = load_recipe([path], overrides + ["environment.device=cpu"] + extra)
    seed_everything(loaded.recipe.environment.seed)
    return build_session(loaded, device=torch.device("cpu"), for_training=for_training)


def timed(function: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all its threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def alternate(
    a: Callable[[], Any], b: Callable[[], Any], *, rounds: int, warmup: int = 1,
    before: Callable[[], Any] | None = None,
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(wall, cpu) seconds of a and of b per round, run alternately (a b, b a, ...) after `warmup`
    untimed rounds; `before` (untimed) runs at the start of every round."""
    for _ in range(warmup):
        if before is not None:
            before()
        a()
        b()
    times_a, times_b = [], []
    for index in range(rounds):
        if before is not None:
            before()
        if index % 2 == 0:
            times_a.append(timed(a))
            times_b.append(timed(b))
        else:
            times_b.append(timed(b))
            times_a.append(timed(a))
    return times_a, times_b


def median_ratio(numerators: list, denominators: list, *, which: int = 0) -> float:
    """Median over rounds of numerator / denominator; `which` picks wall (0) or CPU (1) time for
    (wall, cpu) pairs; plain floats are used as they are."""

    def pick(value):
        return value[which] if isinstance(value, tuple) else value

    return statistics.median(pick(n) / pick(d) for n, d in zip(numerators, denominators))


def median_of(times: list, *, which: int = 0) -> float:
    return statistics.median(t[which] if isinstance(t, tuple) else t for t in times)


def add_threads_option(parser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads (default: torch's, the core count); 1 gives steadier CPU-time "
             "ratios on a shared machine",
    )


def apply_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def table(rows: list[list[Any]], header: list[str], title: str | None = None) -> None:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    if title:
        print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    print("  ".join(c.ljust(w) for c, w in zip(cells[0], widths)))
    print(line)
    for row in cells[1:]:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def machine() -> str:
    import platform

    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads"
    )
