"""Evaluation cost: the real `evaluate()` per task, and the detection mAP against pycocotools.

1. Per task (shipped shapes recipe, untrained model, val loader with the recipe's workers):
   seconds per 1000 val images of `trainer.engine.evaluate.evaluate` (forward + postprocess +
   metrics), alternated with a bare forward pass over the same loader, so the evaluator's share
   (decode, NMS, COCO mAP; confusion matrix; top-k) is visible as a ratio. An untrained detector
   keeps up to `max_detections` boxes per image, the worst case for NMS and COCOeval.
2. mAP computation: `trainer.metrics.detection.CocoEvaluator` (batched tensor inputs -> COCO dicts
   -> COCOeval) against pycocotools' COCOeval called directly on ready-made COCO dicts, same
   detections (500 images, 20 detections and ~6 gts each, 20 classes); the mAPs are checked equal.
   faster-coco-eval on the same dicts is shown for reference when installed.

Usage: python scripts/bench_eval.py [--tasks ...] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import bench_common as bc
import numpy as np
import torch

from trainer.engine.evaluate import evaluate
from trainer.metrics.detection import CocoEvaluator


def bench_evaluate(task: str, path, overrides: list[str], rounds: int) -> list:
    session = bc.load_session(path, overrides, for_training=False)
    model = session.model
    images = len(session.val_set)

    metrics: dict[str, float] = {}

    def full() -> None:
        metrics.update(evaluate(model=model, session=session, amp_dtype=None)[0])

    @torch.no_grad()
    def forward_only() -> None:
        model.eval()
        for batch in session.val_loader:
            model(session.prepare_batch(batch)["images"])

    t_eval, t_forward = bc.alternate(full, forward_only, rounds=rounds)
    per_1000 = 1000 * bc.median_of(t_eval) / images
    return [task, images, per_1000, 1000 * bc.median_of(t_forward) / images,
            bc.median_ratio(t_eval, t_forward), ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())]


def synthetic_detections(num_images: int, dets: int, classes: int, seed: int = 0):
    g = np.random.default_rng(seed)
    gts, results = [], []
    for _ in range(num_images):
        count = int(g.integers(1, 12))
        xy = g.uniform(0, 400, (count, 2))
        wh = g.uniform(10, 200, (count, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        labels = g.integers(0, classes, count)
        gts.append((boxes, labels))
        # detections: jittered copies of the gts plus random boxes
        pick = g.integers(0, count, dets)
        jitter = g.normal(0, 8, (dets, 4))
        det_boxes = boxes[pick] + jitter
        random_rows = g.uniform(size=dets) < 0.4
        det_boxes[random_rows] = np.concatenate(
            [g.uniform(0, 400, (random_rows.sum(), 2))] * 2, axis=1
        ) + np.concatenate([np.zeros((random_rows.sum(), 2)), g.uniform(10, 200, (random_rows.sum(), 2))], axis=1)
        det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 1)
        det_labels = np.where(g.uniform(size=dets) < 0.8, labels[pick], g.integers(0, classes, dets))
        scores = g.uniform(0.01, 1.0, dets)
        results.append((det_boxes, scores, det_labels))
    return gts, results


def coco_dicts(gts, results, classes: int):
    annotations, dets = [], []
    for image, (boxes, labels) in enumerate(gts):
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": label + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    for image, (boxes, scores, labels) in enumerate(results):
        for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            dets.append({"image_id": image, "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "score": score})
    gt = {"images": [{"id": i} for i in range(len(gts))], "annotations": annotations,
          "categories": [{"id": c + 1, "name": str(c)} for c in range(classes)]}
    return gt, dets


def run_cocoeval(gt: dict, dets: list, module: str = "pycocotools") -> list[float]:
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(dets), iouType="bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [float(s) for s in coco_eval.stats[:3]]


def trainer_coco(gts, results, classes: int, batch: int = 16) -> list[float]:
    """CocoEvaluator fed per batch, as DetectionEvaluator does (padded gts, lists of detections)."""
    evaluator = CocoEvaluator(class_names=[str(c) for c in range(classes)])
    for start in range(0, len(gts), batch):
        ids = torch.arange(start, min(start + batch, len(gts)))
        chunk = gts[start:start + batch]
        m = max(len(labels) for _, labels in chunk)
        boxes = torch.zeros(len(chunk), m, 4)
        labels = torch.full((len(chunk), m), -1, dtype=torch.int64)
        for b, (bx, lb) in enumerate(chunk):
            boxes[b, :len(lb)] = torch.from_numpy(bx).float()
            labels[b, :len(lb)] = torch.from_numpy(lb)
        evaluator.add_ground_truth(ids, boxes, labels, torch.zeros(labels.shape, dtype=torch.bool))
        dets = results[start:start + batch]
        evaluator.add_detections(
            ids, [torch.from_numpy(d[0]).float() for d in dets], [torch.from_numpy(d[1]).float() for d in dets],
            [torch.from_numpy(d[2]) for d in dets],
        )
    metrics = evaluator.compute()
    return [metrics["mAP50_95"], metrics["mAP50"], metrics["mAP75"]]


def bench_map(rounds: int, images: int = 500, dets: int = 20, classes: int = 20) -> list[list]:
    gts, results = synthetic_detections(images, dets, classes)
    # float32 boxes on both sides (the trainer's tensors are float32)
    gts = [(b.astype(np.float32).astype(np.float64), lb) for b, lb in gts]
    results = [(b.astype(np.float32).astype(np.float64), s.astype(np.float32).astype(np.float64), lb)
               for b, s, lb in results]
    gt, coco_results = coco_dicts(gts, results, classes)
    ours, direct = trainer_coco(gts, results, classes), run_cocoeval(gt, coco_results)
    np.testing.assert_allclose(ours, direct, rtol=0, atol=1e-9)
    t_ours, t_direct = bc.alternate(
        lambda: trainer_coco(gts, results, classes), lambda: run_cocoeval(gt, coco_results), rounds=rounds
    )
    rows = [["CocoEvaluator (tensors -> COCOeval)", 1000 * bc.median_of(t_ours),
             bc.median_ratio(t_ours, t_direct), f"{ours[0]:.4f}"],
            ["pycocotools COCOeval (ready dicts)", 1000 * bc.median_of(t_direct), 1.0, f"{direct[0]:.4f}"]]
    try:
        fast = run_cocoeval(gt, coco_results, "faster_coco_eval")
        t_fast, t_direct2 = bc.alternate(
            lambda: run_cocoeval(gt, coco_results, "faster_coco_eval"), lambda: run_cocoeval(gt, coco_results),
            rounds=rounds,
        )
        rows.append(["faster-coco-eval (ready dicts)", 1000 * bc.median_of(t_fast),
                     bc.median_ratio(t_fast, t_direct2), f"{fast[0]:.4f}"])
    except ImportError:
        pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--rounds", type=int, default=2 if bc.quick() else 3)
    bc.add_threads_option(parser)
    args = parser.parse_args()
    bc.apply_threads(args.threads)
    print(f"bench_eval: {bc.machine()}")
    rows = []
    for task, path, overrides in bc.available_tasks(args.tasks):
        start = time.perf_counter()
        rows.append(bench_evaluate(task, path, overrides, args.rounds))
        print(f"  {task}: {time.perf_counter() - start:.0f} s")
    bc.table(rows, ["task", "val images", "evaluate s/1000 img", "forward s/1000 img", "evaluate/forward",
                    "metrics (untrained)"], title="evaluate() over the val loader")
    start = time.perf_counter()
    map_rows = bench_map(args.rounds)
    print(f"  mAP: {time.perf_counter() - start:.0f} s")
    bc.table(map_rows, ["mAP computation, 500 images x 20 dets", "ms", "time / pycocotools", "mAP50_95"],
             title="detection mAP (values checked equal to pycocotools)")


if __name__ == "__main__":
    main()
