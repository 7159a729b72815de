"""Do the defaults train? Recipes that name only data, model, losses, epochs and batch size.

    python scripts/bench_defaults.py                          # all four, one after the other (~35 min, one thread)
    python scripts/bench_defaults.py retinanet yolox --out /tmp/defaults

Each recipe uses the data, epochs and batch size of the shipped shapes recipe of its model and
leaves everything else to the defaults (no augmentation, `optimizer: auto`, the task's warmup, no
EMA, default postprocess). Trains each with `trainer train` on one thread and prints the val
metric after every epoch, the final one, the wall time and the target of issue 12
(docs/benchmarks.md, "Defaults that train").
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

SHAPES = {"format": "shapes"}
RECIPES = {
    "classification": ({
        "task": "classification",
        "data": {**SHAPES, "train": {"num_images": 3000, "image_size": 48},
                 "val": {"num_images": 400, "image_size": 48}},
        "model": {"architecture": {"backbone": {"name": "resnet18"}}, "losses": [{"criterion": "cross_entropy"}]},
        "training": {"epochs": 6, "batch_size": 32},
    }, "val/top1", 0.95),
    "yolox": ({
        "task": "detection",
        "data": {**SHAPES, "train": {"num_images": 4000, "image_size": 48, "max_shapes": 2},
                 "val": {"num_images": 200, "image_size": 48, "max_shapes": 2}},
        "model": {"architecture": {"backbone": {"name": "cspdarknet_nano"},  # YOLOX-nano: depthwise neck and head
                                   "neck": {"name": "pafpn", "depth": 0.33, "depthwise": True},
                                   "head": {"name": "anchor_free_decoupled", "depthwise": True}},
                  "losses": [{"criterion": "yolox_loss"}]},
        "training": {"epochs": 16, "batch_size": 16},
    }, "val/mAP50", 0.85),
    "retinanet": ({
        "task": "detection",
        "data": {**SHAPES, "train": {"num_images": 3200, "image_size": 48, "max_shapes": 2},
                 "val": {"num_images": 200, "image_size": 48, "max_shapes": 2}},
        "model": {"architecture": {"backbone": {"name": "resnet18"}, "neck": {"name": "fpn"}},
                  "losses": [{"criterion": "retinanet_loss"}]},
        "training": {"epochs": 5, "batch_size": 16},
    }, "val/mAP50", 0.85),
    "pidnet": ({
        "task": "segmentation",
        "data": {**SHAPES, "train": {"num_images": 4096, "image_size": 128},
                 "val": {"num_images": 128, "image_size": 128}},
        "model": {"architecture": {"full": {"name": "pidnet", "size": "s"}}, "losses": [{"criterion": "pidnet_loss"}]},
        "training": {"epochs": 3, "batch_size": 16},
    }, "val/mIoU", 0.8),
}


def run(name: str, out: Path) -> None:
    recipe, metric, target = RECIPES[name]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**recipe, "logging": {"output_dir": str(out), "name": name}}, sort_keys=False))
    cli = str(Path(sys.executable).parent / "trainer")
    start = time.time()
    with open(out / f"{name}.log", "w", encoding="utf-8") as log:
        subprocess.run([cli, "train", str(path)], check=True, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
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
