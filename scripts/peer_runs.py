"""One training of one tool at the shared settings: command, timing, and its final metric.

Every tool runs as a subprocess with one thread (OMP_NUM_THREADS=1 and the step hook's
``torch.set_num_threads(1)``), one loader worker, and ``peer_hooks/sitecustomize.py`` on
PYTHONPATH recording each optimizer step's time. Detection predictions of every tool are scored by
pycocotools COCOeval against the set's one ``val_coco.json``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent


@dataclass(frozen=True)
class Settings:
    task: str  # detection | classification
    data: Path  # a peer_data folder
    class_names: tuple[str, ...]
    image_size: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    seed: int
    by_epoch: bool = False  # trainer's cosine once per epoch, as NetsPresso's and Ultralytics' schedules


@dataclass
class Outcome:
    tool: str
    wall_s: float
    first_step_s: float  # launch to the first optimizer step
    img_per_s: float
    metric: dict[str, float] = field(default_factory=dict)
    top1_per_epoch: list[float] = field(default_factory=list)  # classification: val top-1 after each epoch

    def epochs_to(self, top1: float) -> int | None:
        """The first epoch whose val top-1 reached ``top1`` (None: never, or not recorded)."""
        return next((i + 1 for i, value in enumerate(self.top1_per_epoch) if value >= top1), None)


def coco_metrics(predictions: list[dict], gt_json: Path) -> dict[str, float]:
    """pycocotools mAP50-95 / mAP50 / mAP75 of COCO results against ``gt_json``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        if not predictions:
            return {"mAP50_95": 0.0, "mAP50": 0.0, "mAP75": 0.0}
        evaluator = COCOeval(gt, gt.loadRes(predictions), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"mAP50_95": float(stats[0]), "mAP50": float(stats[1]), "mAP75": float(stats[2])}


def steady_img_per_s(step_log: Path, batch_size: int) -> float:
    """batch / median-free mean step interval, leaving out gaps > 3x the median (epoch starts, validation)."""
    times = np.loadtxt(step_log, ndmin=1) if step_log.exists() else np.zeros(0)
    gaps = np.diff(np.unique(times))  # unique: a forked worker may flush a copy of the buffer
    if gaps.size == 0:
        return float("nan")
    steady = gaps[gaps <= 3 * np.median(gaps)]
    return float(batch_size / steady.mean())


def _timed(tool: str, command: list[str], out: Path, batch_size: int) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    step_log = out / "steps.txt"
    step_log.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PEER_STEP_LOG": str(step_log),
           "PYTHONPATH": str(SCRIPTS / "peer_hooks")}
    start = time.time()
    with open(out / "train.log", "w", encoding="utf-8") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(out))
    wall = time.time() - start
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed (exit {done.returncode}); see {out / 'train.log'}")
    times = np.loadtxt(step_log, ndmin=1) if step_log.exists() else np.zeros(0)
    first = float(times.min() - start) if times.size else float("nan")
    return Outcome(tool=tool, wall_s=wall, first_step_s=first, img_per_s=steady_img_per_s(step_log, batch_size))


def _peer_args(s: Settings, out: Path) -> list[str]:
    return ["--data", str(s.data), "--out", str(out), "--task", s.task, "--epochs", str(s.epochs),
            "--batch-size", str(s.batch_size), "--lr", str(s.lr), "--weight-decay", str(s.weight_decay),
            "--warmup-epochs", str(s.warmup_epochs), "--image-size", str(s.image_size), "--seed", str(s.seed)]


def run_peer(tool: str, python: Path, s: Settings, out: Path) -> Outcome:
    """NetsPresso or Ultralytics through its driver script, in its own venv."""
    script = SCRIPTS / f"peer_{tool}.py"
    extra = ["--class-names", json.dumps(list(s.class_names))] if tool == "netspresso" else []
    outcome = _timed(tool, [str(python), str(script), *_peer_args(s, out), *extra], out, s.batch_size)
    result = json.loads((out / "result.json").read_text())
    outcome.metric = (coco_metrics(result["predictions"], s.data / "val_coco.json")
                      if s.task == "detection" else {"top1": result["top1"]})
    outcome.top1_per_epoch = result.get("top1_per_epoch", [])
    return outcome


def trainer_recipe(s: Settings, out: Path) -> dict:
    """The trainer recipe for these settings (everything not named stays at trainer's defaults)."""
    if s.task == "detection":
        split = {"root": str(s.data), "class_names": list(s.class_names)}
        data = {"format": "yolo", "train": split, "val": split}
        architecture = {"backbone": {"name": "cspdarknet_nano"}, "neck": {"name": "pafpn", "depthwise": True},
                        "head": {"name": "anchor_free_decoupled", "depthwise": True}}
        losses = [{"criterion": "yolox_loss"}]
        postprocess = {"score_threshold": 0.001, "nms_iou": 0.65}
    else:
        data = {"format": "image_folder", "train": {"root": str(s.data / "train")},
                "val": {"root": str(s.data / "val")}}
        architecture, losses, postprocess = {"backbone": {"name": "resnet18"}}, [{"criterion": "cross_entropy"}], {}
    return {
        "task": s.task, "data": data,
        "augmentation": {"train": [{"name": "normalize"}], "val": [{"name": "normalize"}]},
        "model": {"architecture": architecture, "losses": losses,
                  **({"postprocess": postprocess} if postprocess else {})},
        "training": {"epochs": s.epochs, "batch_size": s.batch_size,
                     "optimizer": {"name": "adamw", "lr": s.lr, "weight_decay": s.weight_decay},
                     "scheduler": {"name": "cosine", "warmup_epochs": s.warmup_epochs, "by_epoch": s.by_epoch},
                     "ema": {"enabled": False},
                     "val_every": s.epochs if s.task == "detection" else 1},
        "logging": {"output_dir": str(out), "name": "run", "plots": False, "progress": "lines"},
        "environment": {"num_workers": 1, "seed": s.seed},
    }


def run_trainer(s: Settings, out: Path, recipe: dict | None = None) -> Outcome:
    """trainer train, then trainer predict (detection) or trainer eval (classification) on the val split."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe or trainer_recipe(s, out), sort_keys=False))
    cli = str(Path(sys.executable).parent / "trainer")
    if (out / "run").exists():
        subprocess.run(["rm", "-rf", str(out / "run")], check=True)
    outcome = _timed("trainer", [cli, "train", str(out / "recipe.yaml")], out, s.batch_size)
    if s.task == "detection":
        pred_dir = out / "predict"
        subprocess.run(["rm", "-rf", str(pred_dir)], check=True)
        subprocess.run([cli, "predict", str(out / "run"), str(s.data / "images" / "val"), "--out", str(pred_dir)],
                       check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        outcome.metric = coco_metrics(_trainer_predictions(pred_dir, s.data), s.data / "val_coco.json")
    else:
        subprocess.run([cli, "eval", str(out / "run"), "--json", str(out / "eval.json")], check=True,
                       capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        outcome.metric = {"top1": json.loads((out / "eval.json").read_text())["metrics"]["top1"]}
        with open(out / "run" / "metrics.csv", encoding="utf-8") as rows:
            outcome.top1_per_epoch = [float(row["val/top1"]) for row in csv.DictReader(rows)]
    return outcome


def _trainer_predictions(pred_dir: Path, data: Path) -> list[dict]:
    """trainer predict's COCO results, re-keyed from its image index to the set's image ids by file name."""
    ids = {im["file_name"]: im["id"] for im in json.loads((data / "val_coco.json").read_text())["images"]}
    index = {im["id"]: ids[Path(im["file_name"]).name]
             for im in json.loads((pred_dir / "images.json").read_text())["images"]}
    predictions = json.loads((pred_dir / "predictions.json").read_text())
    return [{**p, "image_id": index[p["image_id"]]} for p in predictions]
