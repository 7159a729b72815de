"""Metrics under torch.distributed (2 CPU processes, gloo): same numbers as one process."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainer.metrics.classification import ClassificationMetrics
from trainer.metrics.detection import CocoEvaluator
from trainer.metrics.segmentation import SegmentationMetrics


def _data():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(8, 7, generator=g), torch.randint(0, 7, (8,), generator=g)
    seg_logits, seg_labels = torch.randn(4, 3, 4, 4, generator=g), torch.randint(0, 3, (4, 8, 8), generator=g)
    seg_labels[:, 0] = 255
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 30.0, 20.0]])
    images = {
        i: (boxes + i, torch.tensor([i % 2, 1]), boxes + i + torch.tensor([1.0, 0.0, 1.0, 2.0] if i % 2 else 0.0))
        for i in range(6)
    }
    return logits, labels, seg_logits, seg_labels, images


def _fill(cls_m, seg_m, det_m, rows, image_ids):
    logits, labels, seg_logits, seg_labels, images = _data()
    cls_m.update(logits=logits[rows], labels=labels[rows])
    seg_m.update(logits=seg_logits[rows[:2]], labels=seg_labels[rows[:2]])
    for i in image_ids:
        gt_boxes, gt_labels, det_boxes = images[i]
        det_m.add_ground_truth(i, gt_boxes, gt_labels)
        det_m.add_detections(i, det_boxes, torch.tensor([0.9, 0.6]), gt_labels)


def _metrics(cls_m, seg_m, det_m):
    return {
        **cls_m.compute(),
        **seg_m.compute(),
        **det_m.compute(),
        "confusion": cls_m.confusion_matrix().tolist(),
        "iou": seg_m.per_class_iou().nan_to_num(-1).tolist(),
    }


def _new():
    return (
        ClassificationMetrics(num_classes=7, device="cpu"),
        SegmentationMetrics(num_classes=3, device="cpu"),
        CocoEvaluator(class_names=["a", "b"]),
    )


def _worker(rank, init_file, out_dir, sys_path):
    sys.path[:0] = sys_path
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        metrics = _new()
        rows = torch.arange(8)[rank::2]
        # image 4 is seen by both ranks, as DistributedSampler padding would do
        _fill(*metrics, rows, [0, 2, 4] if rank == 0 else [1, 3, 5, 4])
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(_metrics(*metrics), f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), list(sys.path)), nprocs=2, join=True)
    cls_m, seg_m, det_m = _new()
    logits, labels, seg_logits, seg_labels, _ = _data()
    cls_m.update(logits=logits, labels=labels)
    seg_m.update(logits=seg_logits, labels=seg_labels)
    _fill(*_new()[:2], det_m, torch.arange(0), range(6))
    expected = json.loads(json.dumps(_metrics(cls_m, seg_m, det_m)))
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got.keys() == expected.keys()
        for key in ("confusion", "iou"):
            assert got.pop(key) == expected[key], key
        assert got == pytest.approx({k: v for k, v in expected.items() if k not in ("confusion", "iou")})
