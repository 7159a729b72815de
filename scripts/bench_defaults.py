"""Do the defaults train? `trainer new`'s shapes templates: only data, model, losses, epochs and batch size.

    python scripts/bench_defaults.py                          # all five, one after the other (~30 min, one thread)
    python scripts/bench_defaults.py retinanet yolox --out /tmp/defaults

`trainer new --task T --loss L` writes, for the built-in shapes, the data sizes, epochs and batch
size of the model's shipped shapes recipe and leaves everything else to the defaults (no
augmentation, `optimizer: auto`, cosine with the task's warmup, no EMA, default postprocess).
Trains each template as written with `trainer train` on one thread and prints the val metric after
every epoch, the final one, the wall time and issue 12's target (docs/benchmarks.md, "Defaults that
train").
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

RECIPES = {  # name: (`trainer new` arguments, the metric, issue 12's target)
    "classification": (["--task", "classification"], "val/top1", 0.95),
    "yolox": (["--task", "detection", "--loss", "yolox_loss"], "val/mAP50", 0.85),
    "retinanet": (["--task", "detection", "--loss", "retinanet_loss"], "val/mAP50", 0.85),
    "pidnet": (["--task", "segmentation", "--loss", "pidnet_loss"], "val/mIoU", 0.8),
    "seg_head": (["--task", "segmentation", "--loss", "cross_entropy"], "val/mIoU", 0.8),  # resnet18_seg_shapes: 0.80
}


def run(name: str, out: Path) -> None:
    arguments, metric, target = RECIPES[name]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    cli = str(Path(sys.executable).parent / "trainer")
    subprocess.run([cli, "new", *arguments, "--out", str(path), "--force"], check=True, capture_output=True)
    start = time.time()
    with open(out / f"{name}.log", "w", encoding="utf-8") as log:
        subprocess.run([cli, "train", str(path), f"logging.output_dir={out}", f"logging.name={name}"], check=True,
                       stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    with open(out / name / "metrics.csv", encoding="utf-8") as rows:
        values = [float(row[metric]) for row in csv.DictReader(rows) if row.get(metric)]
    verdict = "meets" if values and values[-1] >= target else "misses"
    print(f"{name}: {metric} per epoch {' / '.join(f'{v:.3f}' for v in values)}; final {values[-1]:.3f} "
          f"({verdict} the target {target}), {time.time() - start:.0f} s; recipe {path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(RECIPES)} (default: all)")
    parser.add_argument("--out", default="runs/bench_defaults", help="recipes, logs and runs go here (replaced)")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {list(RECIPES)}")
    for name in args.names or list(RECIPES):
        subprocess.run(["rm", "-rf", str(Path(args.out) / name)], check=True)
        run(name, Path(args.out))


if __name__ == "__main__":
    main()
