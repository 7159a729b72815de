"""CocoEvaluator gives pycocotools' numbers exactly (and faster-coco-eval's)."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from trainer.metrics.detection import CocoEvaluator

CLASSES = ["cat", "dog", "bird"]


def _scene(seed: int = 0):
    """Images with several classes, a crowd box, an image with no gt but detections (FP) and an
    image with gt but no detections (FN).  Coordinates are multiples of 0.5 (exact in float32)."""
    rng = np.random.default_rng(seed)
    gts, dets = {}, {}
    for image_id in range(1, 13):
        n = 0 if image_id == 3 else int(rng.integers(1, 6))
        xy = rng.integers(0, 80, size=(n, 2)) * 1.0
        wh = rng.integers(4, 40, size=(n, 2)) * 1.0
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, 3, size=n)
        crowd = np.zeros(n, dtype=bool)
        if image_id == 2:  # a big crowd box with detections inside it
            boxes = np.concatenate([boxes, [[0.0, 0.0, 60.0, 60.0]]])
            labels = np.concatenate([labels, [1]])
            crowd = np.concatenate([crowd, [True]])
        gts[image_id] = (boxes, labels, crowd)
        if image_id == 4:  # gt, no detections
            dets[image_id] = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))
            continue
        jitter = rng.integers(-6, 7, size=boxes.shape) * 0.5
        keep = rng.random(len(boxes)) < 0.8
        d_boxes = (boxes + jitter)[keep]
        d_labels = np.where(rng.random(keep.sum()) < 0.85, labels[keep], rng.integers(0, 3, keep.sum()))
        extra = int(rng.integers(0, 4)) + (3 if image_id == 3 else 0)
        e_xy = rng.integers(0, 80, size=(extra, 2)) * 1.0
        e_boxes = np.concatenate([e_xy, e_xy + rng.integers(4, 30, size=(extra, 2))], 1)
        if image_id == 2:
            e_boxes = np.concatenate([e_boxes, [[2.0, 2.0, 20.0, 20.0], [10.0, 10.0, 30.0, 25.0]]])
        e_labels = np.concatenate([rng.integers(0, 3, extra), [1, 1] if image_id == 2 else []]).astype(np.int64)
        d_boxes = np.concatenate([d_boxes, e_boxes])
        d_labels = np.concatenate([d_labels, e_labels]).astype(np.int64)
        scores = np.round(rng.random(len(d_boxes)), 3)
        dets[image_id] = (d_boxes, scores, d_labels)
    return gts, dets


def _reference_json(gts, dets):
    images = sorted(set(gts) | set(dets))
    anns = []
    for image_id in images:
        for box, label, crowd in zip(*gts.get(image_id, (np.zeros((0, 4)), [], []))):
            x1, y1, x2, y2 = (float(v) for v in box)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(crowd),
                }
            )
    gt = {
        "images": [{"id": i} for i in images],
        "annotations": anns,
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)],
    }
    results = []
    for image_id, (boxes, scores, labels) in dets.items():
        for box, score, label in zip(boxes, scores, labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(np.float32(score)),
                }
            )
    return gt, results


def _pycocotools(gt, results, image_ids=None):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iouType="bbox")
        if image_ids is not None:
            ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _filled(gts, dets, mode="single"):
    ev = CocoEvaluator(class_names=CLASSES)

    def t(a, dtype=torch.float32):
        return torch.as_tensor(np.asarray(a), dtype=dtype)

    ids = sorted(gts)
    if mode == "single":
        for i in ids:
            b, labels, c = gts[i]
            ev.add_ground_truth(i, t(b).reshape(-1, 4), t(labels, torch.int64), t(c, torch.bool))
            b, s, labels = dets[i]
            ev.add_detections(i, t(b).reshape(-1, 4), t(s), t(labels, torch.int64))
    elif mode == "list":
        for chunk in (ids[:5], ids[5:]):
            ev.add_ground_truth(
                torch.tensor(chunk),
                [t(gts[i][0]).reshape(-1, 4) for i in chunk],
                [t(gts[i][1], torch.int64) for i in chunk],
                [t(gts[i][2], torch.bool) for i in chunk],
            )
            ev.add_detections(
                chunk,
                [t(dets[i][0]).reshape(-1, 4) for i in chunk],
                [t(dets[i][1]) for i in chunk],
                [t(dets[i][2], torch.int64) for i in chunk],
            )
    else:  # padded, as in a collated batch (labels -1 on padding rows)
        for chunk in (ids[:7], ids[7:]):
            for kind, source in (("gt", gts), ("det", dets)):
                m = max(len(source[i][0]) for i in chunk)
                boxes = torch.zeros(len(chunk), m, 4)
                second = torch.zeros(len(chunk), m, dtype=torch.bool if kind == "gt" else torch.float32)
                labels = torch.full((len(chunk), m), -1, dtype=torch.int64)
                for row, i in enumerate(chunk):
                    n = len(source[i][0])
                    boxes[row, :n] = t(source[i][0]).reshape(-1, 4)
                    second[row, :n] = t(source[i][2 if kind == "gt" else 1], second.dtype)
                    labels[row, :n] = t(source[i][1 if kind == "gt" else 2], torch.int64)
                if kind == "gt":
                    ev.add_ground_truth(torch.tensor(chunk), boxes, labels, second)
                else:
                    ev.add_detections(torch.tensor(chunk), boxes, second, labels)
    return ev


@pytest.mark.parametrize("mode", ["single", "list", "padded"])
def test_identical_to_pycocotools(mode, capsys):
    gts, dets = _scene()
    ev = _filled(gts, dets, mode)
    metrics = ev.compute()
    ref = _pycocotools(*_reference_json(gts, dets))
    assert metrics == {"mAP50_95": ref.stats[0], "mAP50": ref.stats[1], "mAP75": ref.stats[2]}
    assert ev.coco_stats() == [max(float(s), 0.0) for s in ref.stats]
    assert 0.05 < metrics["mAP50_95"] < 0.95  # a scene that actually exercises matching
    assert capsys.readouterr().out == ""  # pycocotools prints are suppressed

    precision = ref.eval["precision"]
    for k, name in enumerate(CLASSES):
        p = precision[:, :, k, 0, -1]
        assert ev.per_class_ap()[name] == pytest.approx(p[p > -1].mean(), abs=0, rel=1e-12)
    curve = ev.pr_curve()
    assert curve["recall"].shape == (101,) and curve["precision_per_class"].shape == (3, 101)
    np.testing.assert_allclose(curve["precision_per_class"][0], precision[0, :, 0, 0, -1])
    np.testing.assert_allclose(curve["precision"], precision[0, :, :, 0, -1].mean(axis=1))


def test_false_positives_on_empty_image_count():
    gts, dets = _scene()
    full = _filled(gts, dets).compute()["mAP50_95"]
    gts_no3 = {i: v for i, v in gts.items() if i != 3}
    dets_no3 = {i: v for i, v in dets.items() if i != 3}
    without = _filled(gts_no3, dets_no3).compute()["mAP50_95"]
    assert len(dets[3][0]) > 0 and without > full


def test_matches_faster_coco_eval():
    fce = pytest.importorskip("faster_coco_eval")
    gts, dets = _scene(seed=1)
    metrics = _filled(gts, dets).compute()
    gt, results = _reference_json(gts, dets)
    coco_gt = fce.COCO(copy.deepcopy(gt))
    ev = fce.COCOeval_faster(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iouType="bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    for key, index in (("mAP50_95", 0), ("mAP50", 1), ("mAP75", 2)):
        assert metrics[key] == pytest.approx(float(ev.stats[index]), abs=1e-6)


def test_from_coco_gt_uses_dataset_annotations_and_seen_images():
    gts, dets = _scene(seed=2)
    gt, _ = _reference_json(gts, dets)
    cat_ids = [1, 3, 7]  # COCO-style non-contiguous ids; label i -> cat_ids[i]
    gt["categories"] = [{"id": c, "name": n} for c, n in zip(cat_ids, CLASSES)]
    for ann in gt["annotations"]:
        ann["category_id"] = cat_ids[ann["category_id"] - 1]
        ann["area"] = ann["area"] * 0.7  # segmentation areas differ from box areas
    ev = CocoEvaluator.from_coco_gt(copy.deepcopy(gt))
    assert ev.class_names == CLASSES and ev.category_ids == cat_ids
    seen = [1, 2, 3, 5, 8]  # evaluate a subset of the dataset
    for i in seen:
        b, s, labels = dets[i]
        ev.add_detections(i, torch.tensor(b, dtype=torch.float32).reshape(-1, 4), torch.tensor(s), torch.tensor(labels))
    with pytest.raises(RuntimeError):
        ev.add_ground_truth(1, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    results = [r for r in _reference_json(gts, dets)[1] if r["image_id"] in seen]
    for r in results:
        r["category_id"] = cat_ids[r["category_id"] - 1]
    ref = _pycocotools(gt, results, image_ids=seen)
    assert ev.compute() == {"mAP50_95": ref.stats[0], "mAP50": ref.stats[1], "mAP75": ref.stats[2]}


def test_duplicate_images_counted_once():
    gts, dets = _scene()
    ev = _filled(gts, dets)
    b, labels, c = gts[1]
    ev.add_ground_truth(1, torch.tensor(b, dtype=torch.float32), torch.tensor(labels), torch.tensor(c))
    assert ev.compute() == _filled(gts, dets).compute()


def test_empty_detections_and_no_gt_give_zeros():
    ev = CocoEvaluator(class_names=CLASSES)
    ev.add_ground_truth(1, torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([0]))
    ev.add_detections(1, torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    assert ev.compute() == {"mAP50_95": 0.0, "mAP50": 0.0, "mAP75": 0.0}
    assert all(math.isnan(v) for v in ev.per_class_ap().values())

    ev = CocoEvaluator(class_names=CLASSES)
    ev.add_ground_truth([1, 2], [torch.zeros(0, 4)] * 2, [torch.zeros(0, dtype=torch.int64)] * 2)
    ev.add_detections(
        [1, 2],
        [torch.tensor([[0.0, 0.0, 5.0, 5.0]]), torch.zeros(0, 4)],
        [torch.tensor([0.9]), torch.zeros(0)],
        [torch.tensor([2]), torch.zeros(0, dtype=torch.int64)],
    )
    assert ev.compute() == {"mAP50_95": 0.0, "mAP50": 0.0, "mAP75": 0.0}

    assert CocoEvaluator(class_names=CLASSES).compute()["mAP50"] == 0.0


def test_perfect_detections_score_one():
    ev = CocoEvaluator(class_names=["a", "b"])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 50.0, 40.0]])
    ev.add_ground_truth(7, boxes, torch.tensor([0, 1]), torch.tensor([False, False]))
    ev.add_detections(7, boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]))
    assert ev.compute() == pytest.approx({"mAP50_95": 1.0, "mAP50": 1.0, "mAP75": 1.0}, abs=1e-12)
    assert ev.per_class_ap() == pytest.approx({"a": 1.0, "b": 1.0}, abs=1e-12)


def test_padding_labels_dropped_and_bad_labels_rejected():
    ev = CocoEvaluator(class_names=["a", "b"])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    ev.add_ground_truth(1, boxes, torch.tensor([0, -1]))
    ev.add_detections(1, boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, -1]))
    assert ev.compute()["mAP50"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="out of range"):
        ev.add_detections(2, boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 2]))
