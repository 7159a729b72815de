import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from trainer.data.coco import CocoDataset
from trainer.data.errors import DataError, DataWarning


def write_image(path, width, height):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(path)


def make_coco(tmp_path, *, annotations=None, categories=None):
    images = [
        {"id": 11, "file_name": "a.jpg", "width": 40, "height": 30},
        {"id": 12, "file_name": "sub/b.png", "width": 20, "height": 20},
        {"id": 13, "file_name": "empty.png", "width": 16, "height": 16},  # no annotations
    ]
    for image in images:
        write_image(tmp_path / "images" / image["file_name"], image["width"], image["height"])
    if categories is None:
        categories = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    if annotations is None:
        annotations = [
            {"id": 1, "image_id": 11, "category_id": 3, "bbox": [2, 3, 10, 5], "area": 50, "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 7, "bbox": [30, 20, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 3, "image_id": 12, "category_id": 7, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 1},
            {"id": 4, "image_id": 12, "category_id": 3, "bbox": [5, 5, 0, 3], "area": 0, "iscrowd": 0},
        ]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def load(tmp_path, path, **options):
    return CocoDataset(
        task="detection", split="val", images_dir=str(tmp_path / "images"), annotations=str(path), **options
    )


def test_samples(tmp_path):
    path = make_coco(tmp_path)
    with pytest.warns(DataWarning, match="1 box.*clipped.*1 box.*dropped") as record:
        data = load(tmp_path, path)
    assert len([w for w in record if issubclass(w.category, DataWarning)]) == 1
    assert data.class_names == ["cat", "dog"]  # sorted by category id: 3, 7
    assert len(data) == 3
    first = data[0]
    assert isinstance(first["image"], tv_tensors.Image) and first["image"].shape == (3, 30, 40)
    assert isinstance(first["boxes"], tv_tensors.BoundingBoxes) and tuple(first["boxes"].canvas_size) == (30, 40)
    torch.testing.assert_close(
        first["boxes"].as_subclass(torch.Tensor), torch.tensor([[2.0, 3, 12, 8], [30, 20, 40, 30]])
    )
    assert first["labels"].tolist() == [0, 1] and first["labels"].dtype == torch.int64
    assert first["image_id"] == 11
    second = data[1]  # crowd kept and flagged, degenerate dropped
    assert second["labels"].tolist() == [1] and second["iscrowd"].tolist() == [True]
    empty = data[2]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["iscrowd"].dtype == torch.bool


def test_class_names_fix_the_order(tmp_path):
    path = make_coco(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = load(tmp_path, path, class_names=["dog", "cat", "bird"])
    assert data.class_names == ["dog", "cat", "bird"]
    assert data[0]["labels"].tolist() == [1, 0]
    with pytest.raises(DataError, match="'cat' is not in class_names"):
        load(tmp_path, path, class_names=["dog"])


def test_unknown_category_names_file_and_annotation(tmp_path):
    path = make_coco(tmp_path, annotations=[{"id": 42, "image_id": 11, "category_id": 99, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(DataError, match=r"instances\.json: annotations\[0\]\.category_id: 99 .*annotation 42"):
        load(tmp_path, path)


def test_missing_files_and_bad_json(tmp_path):
    with pytest.raises(DataError, match=r"annotation file not found: .*nope\.json"):
        load(tmp_path, tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops")
    with pytest.raises(DataError, match=r"bad\.json:2"):
        load(tmp_path, bad)
    path = make_coco(tmp_path, annotations=[])
    (tmp_path / "images" / "a.jpg").unlink()
    with pytest.raises(DataError, match="a.jpg"):
        load(tmp_path, path)


def test_image_size_mismatch(tmp_path):
    path = make_coco(tmp_path, annotations=[])
    write_image(tmp_path / "images" / "a.jpg", 41, 30)
    with pytest.raises(DataError, match="a.jpg is 41x30"):
        load(tmp_path, path)[0]


def test_coco_gt_scores_perfect_detections_as_one(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = make_coco(
        tmp_path,
        annotations=[
            {"id": 1, "image_id": 11, "category_id": 3, "bbox": [2, 3, 10, 5], "area": 50, "iscrowd": 0},
            {"id": 2, "image_id": 12, "category_id": 7, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 1},
            {"id": 3, "image_id": 12, "category_id": 7, "bbox": [6, 6, 9, 9], "area": 81, "iscrowd": 0},
        ],
    )
    data = load(tmp_path, path)
    gt_dict = data.coco_gt()
    assert [c["id"] for c in gt_dict["categories"]] == [0, 1]
    assert min(a["id"] for a in gt_dict["annotations"]) >= 1
    gt = COCO()
    gt.dataset = gt_dict
    gt.createIndex()
    results = []
    for index in range(len(data)):
        sample = data[index]
        for box, label, crowd in zip(sample["boxes"].tolist(), sample["labels"].tolist(), sample["iscrowd"].tolist()):
            if not crowd:
                x1, y1, x2, y2 = box
                results.append(
                    {
                        "image_id": sample["image_id"],
                        "category_id": label,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": 0.9,
                    }
                )
    evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)
