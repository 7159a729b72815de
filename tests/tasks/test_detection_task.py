"""DetectionTask: collate (padding, crowd boxes, empty images), the evaluator on the real
decode -> NMS -> pycocotools pipeline, the per-class report and predict."""

from __future__ import annotations

import math

import pytest
import torch
from rich.table import Table
from torchvision import tv_tensors

from trainer.data.errors import DataError
from trainer.data.shapes import ShapesDataset
from trainer.recipe.schema import PostprocessConfig
from trainer.tasks import get_task

CLASSES = ["circle", "square", "triangle", "diamond"]


def sample(boxes, labels, crowd=None, *, size=(32, 32), image_id=0):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return {
        "image": tv_tensors.Image(torch.zeros(3, *size, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "iscrowd": torch.tensor(crowd if crowd is not None else [False] * len(labels), dtype=torch.bool),
        "image_id": image_id,
    }


@pytest.fixture
def task():
    return get_task("detection")


def test_task_contract(task):
    assert task.name == "detection"
    assert task.metric_names == ("mAP50_95", "mAP50", "mAP75")
    assert task.default_best_metric == "mAP50_95"
    assert set(task.batch_fields) == {"images", "gt_boxes", "gt_labels", "gt_iscrowd", "image_ids"}


def test_collate_pads_and_hides_crowd_from_losses(task):
    batch = task.collate(
        [
            sample([[1, 2, 10, 12], [4, 4, 30, 30], [0, 0, 5, 5]], [2, 1, 3], [False, True, False], image_id=7),
            sample([[3, 3, 9, 9]], [0], image_id=8),
            sample([], [], image_id=9),  # an image with no boxes
        ]
    )
    assert batch["images"].shape == (3, 3, 32, 32) and batch["images"].dtype == torch.uint8
    assert batch["gt_boxes"].shape == (3, 3, 4) and batch["gt_boxes"].dtype == torch.float32
    assert batch["gt_labels"].dtype == torch.int64 and batch["gt_iscrowd"].dtype == torch.bool
    assert batch["gt_labels"].tolist() == [[2, -1, 3], [0, -1, -1], [-1, -1, -1]]  # crowd -> -1 for the losses
    assert batch["gt_eval_labels"].tolist() == [[2, 1, 3], [0, -1, -1], [-1, -1, -1]]  # class kept for eval
    assert batch["gt_iscrowd"].tolist() == [[False, True, False], [False] * 3, [False] * 3]
    assert batch["gt_boxes"][0, 1].tolist() == [4, 4, 30, 30]
    assert batch["gt_boxes"][1:, 1:].abs().sum() == 0 and batch["gt_boxes"][2].abs().sum() == 0
    assert batch["image_ids"].tolist() == [7, 8, 9] and batch["image_ids"].dtype == torch.int64


def test_collate_all_empty_gives_zero_width_padding(task):
    batch = task.collate([sample([], []), sample([], [], image_id=1)])
    assert batch["gt_boxes"].shape == (2, 0, 4) and batch["gt_labels"].shape == (2, 0)
    assert batch["gt_iscrowd"].shape == (2, 0)


def test_collate_different_sizes_is_a_clear_error(task):
    with pytest.raises(DataError, match="letterbox"):
        task.collate([sample([], [], size=(32, 32)), sample([], [], size=(32, 48))])


def _yolox_outputs(batch, *, strides=(8, 16), num_classes=4):
    """Raw YOLOX outputs that decode exactly to each gt box at the cell holding its centre."""
    height, width = batch["images"].shape[-2:]
    grids, stride_list = [], []
    for s in strides:
        ys, xs = torch.meshgrid(torch.arange(height // s), torch.arange(width // s), indexing="ij")
        grids.append(torch.stack([xs, ys], -1).reshape(-1, 2).float())
        stride_list.append(torch.full((grids[-1].shape[0],), float(s)))
    grid_xy, stride_all = torch.cat(grids), torch.cat(stride_list)
    size, anchors = batch["images"].shape[0], grid_xy.shape[0]
    box_preds = torch.zeros(size, anchors, 4)
    obj = torch.full((size, anchors), -12.0)
    cls = torch.full((size, anchors, num_classes), -12.0)
    level0 = grids[0].shape[0]
    used = set()
    for b in range(size):
        for box, label in zip(batch["gt_boxes"][b], batch["gt_eval_labels"][b]):
            if label < 0:
                continue
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            w, h = box[2] - box[0], box[3] - box[1]
            # the first free stride-8 cell near the centre (shapes may share a cell)
            gx, gy = int(cx // strides[0]), int(cy // strides[0])
            index = gy * (width // strides[0]) + gx
            while (b, index) in used:
                index = (index + 1) % level0
            used.add((b, index))
            g = grid_xy[index]
            s = float(strides[0])
            box_preds[b, index] = torch.stack([cx / s - g[0], cy / s - g[1], torch.log(w / s), torch.log(h / s)])
            obj[b, index] = 12.0
            cls[b, index, label] = 12.0
    return {"box_preds": box_preds, "obj_logits": obj, "cls_logits": cls, "grid_xy": grid_xy, "strides": stride_all}


def _retinanet_outputs(batch, *, num_classes=4):
    """RetinaNet outputs whose anchors are the gt boxes (zero regression) plus low-score decoys."""
    size, count = batch["gt_boxes"].shape[:2]
    decoys = torch.tensor([[0.0, 0.0, 8.0, 8.0], [20.0, 20.0, 40.0, 40.0]])
    anchors = torch.cat([batch["gt_boxes"].reshape(-1, 4), decoys])
    cls = torch.full((size, anchors.shape[0], num_classes), -12.0)
    for b in range(size):
        for m in range(count):
            label = int(batch["gt_eval_labels"][b, m])
            if label >= 0:
                cls[b, b * count + m, label] = 12.0
    cls[:, -2:, 0] = -5.0  # decoys: tiny scores, well below every true detection
    return {"cls_logits": cls, "box_regression": torch.zeros(size, anchors.shape[0], 4), "anchors": anchors}


@pytest.mark.parametrize("make_outputs", [_yolox_outputs, _retinanet_outputs], ids=["yolox", "retinanet"])
def test_evaluator_perfect_predictions_give_map_1(task, make_outputs):
    data = ShapesDataset(task="detection", split="val", num_images=12, image_size=64)
    # shapes may overlap almost entirely (same class, IoU ~0.85): NMS must not merge those here
    post = PostprocessConfig(nms_iou=0.99)
    evaluator = task.build_evaluator(class_names=CLASSES, device=torch.device("cpu"), postprocess=post)
    for start in range(0, 12, 4):
        batch = task.collate([data[i] for i in range(start, start + 4)])
        evaluator.update(outputs=make_outputs(batch), batch=batch)
    metrics = evaluator.compute()
    assert set(metrics) == {"mAP50_95", "mAP50", "mAP75"}
    assert metrics == pytest.approx({"mAP50_95": 1.0, "mAP50": 1.0, "mAP75": 1.0})
    per_class = evaluator.per_class_ap()
    assert set(per_class) == set(CLASSES)
    assert all(math.isnan(v) or v == pytest.approx(1.0) for v in per_class.values())
    table = task.report(evaluator)
    assert isinstance(table, Table) and table.row_count == len(CLASSES)
    curve = evaluator.pr_curve()
    assert curve["recall"].shape == (101,) and curve["precision_per_class"].shape == (4, 101)


def test_evaluator_crowd_and_empty_images(task):
    """A crowd box needs no detection and absorbs detections inside it; an empty image's detections
    are false positives."""
    samples = [
        sample([[2, 2, 12, 12], [0, 0, 64, 64]], [1, 1], [False, True], size=(64, 64), image_id=0),
        sample([], [], size=(64, 64), image_id=1),
    ]
    batch = task.collate(samples)
    outputs = {  # anchors: the real box, one box inside the crowd region, and one on the empty image
        "anchors": torch.tensor([[2.0, 2.0, 12.0, 12.0], [30.0, 30.0, 50.0, 50.0]]),
        "box_regression": torch.zeros(2, 2, 4),
        "cls_logits": torch.full((2, 2, 4), -12.0),
    }
    outputs["cls_logits"][0, 0, 1] = 5.0
    outputs["cls_logits"][0, 1, 1] = 4.0  # inside the crowd box: ignored, not a false positive
    evaluator = task.build_evaluator(class_names=CLASSES, device=torch.device("cpu"), postprocess=PostprocessConfig())
    evaluator.update(outputs=outputs, batch=batch)
    assert evaluator.compute()["mAP50"] == pytest.approx(1.0)

    outputs["cls_logits"][1, 1, 1] = 6.0  # a confident detection on the empty image: a false positive
    evaluator = task.build_evaluator(class_names=CLASSES, device=torch.device("cpu"), postprocess=PostprocessConfig())
    evaluator.update(outputs=outputs, batch=batch)
    assert evaluator.compute()["mAP50"] < 0.9


def test_evaluator_no_detections_is_zero(task):
    batch = task.collate([sample([[2, 2, 12, 12]], [0], size=(32, 32))])
    outputs = {
        "anchors": torch.tensor([[2.0, 2.0, 12.0, 12.0]]),
        "box_regression": torch.zeros(1, 1, 4),
        "cls_logits": torch.full((1, 1, 4), -12.0),
    }
    evaluator = task.build_evaluator(
        class_names=CLASSES, device=torch.device("cpu"), postprocess={"score_threshold": 0.05, "nms_iou": 0.5,
                                                                      "max_detections": 10, "pre_nms_top_k": 100}
    )
    evaluator.update(outputs=outputs, batch=batch)
    assert evaluator.compute() == {"mAP50_95": 0.0, "mAP50": 0.0, "mAP75": 0.0}
    assert isinstance(task.report(evaluator), Table)


def test_prediction_writer_maps_boxes_back_to_the_source_image(task, tmp_path):
    import json

    from trainer.tasks.predictions import PredictedImage

    outputs = {
        "anchors": torch.tensor([[10.0, 20.0, 30.0, 40.0]]),
        "box_regression": torch.zeros(2, 1, 4),
        "cls_logits": torch.tensor([[[-9.0, 3.0]], [[-9.0, 3.0]]]),
    }
    source = torch.zeros(3, 128, 256, dtype=torch.uint8)
    items = [  # letterboxed 128x256 -> 32x64 content in a 64x64 input; resized -> the full 64x64 input
        PredictedImage(index=0, path=tmp_path / "a.png", name="a", tensor=torch.zeros(3, 64, 64), region=(0, 0, 64, 32),
                       image=source),
        PredictedImage(index=1, path=tmp_path / "b.png", name="b", tensor=torch.zeros(3, 64, 64), region=(0, 0, 64, 64),
                       image=source),
    ]
    writer = task.prediction_writer(out_dir=tmp_path, class_names=["a", "b"],
                                    postprocess=PostprocessConfig(score_threshold=0.1), top_k=5, draw_threshold=0.3)
    lines = writer.add(items, outputs)
    writer.finish()
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert [r["bbox"] for r in records] == [[40.0, 80.0, 80.0, 48.0], [40.0, 40.0, 80.0, 40.0]]  # y2 clipped
    assert [r["category_id"] for r in records] == [1, 1] and len(lines) == 2
    assert records[0]["score"] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item(), abs=1e-5)
    assert (tmp_path / "images" / "a.png").is_file() and (tmp_path / "images.json").is_file()
