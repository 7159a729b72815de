import pytest
import torch
from torchvision import tv_tensors

from trainer.data.errors import DataError
from trainer.data.shapes import ShapesDataset
from trainer.data.shapes_generator import SHAPE_NAMES
from trainer.registry import DATASETS


def make(task, split="train", **options):
    options.setdefault("num_images", 6)
    options.setdefault("image_size", 48)
    return ShapesDataset(task=task, split=split, **options)


def test_registered():
    assert DATASETS.get("shapes") is ShapesDataset


def test_deterministic_and_different_per_split_and_seed():
    a, b = make("detection"), make("detection")
    assert torch.equal(a[3]["image"], b[3]["image"])
    assert torch.equal(a[3]["boxes"], b[3]["boxes"])
    val = make("detection", split="val")
    other_seed = make("detection", seed=1)
    for index in range(len(a)):
        assert not torch.equal(a[index]["image"], val[index]["image"])
        assert not torch.equal(a[index]["image"], other_seed[index]["image"])
    # seed 1 train must not replay seed 0 val (seeds are derived per split)
    assert not torch.equal(make("detection", seed=1)[0]["image"], make("detection", split="val")[0]["image"])


def test_classification_sample():
    data = make("classification")
    assert data.class_names == list(SHAPE_NAMES)
    sample = data[0]
    assert set(sample) == {"image", "label"}
    assert isinstance(sample["image"], tv_tensors.Image)
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 48, 48)
    assert isinstance(sample["label"], int) and 0 <= sample["label"] < len(SHAPE_NAMES)


def test_detection_boxes_inside_and_typed():
    data = make("detection", num_images=20)
    counts = set()
    for index in range(len(data)):
        sample = data[index]
        boxes = sample["boxes"]
        assert isinstance(boxes, tv_tensors.BoundingBoxes)
        assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (48, 48)
        assert boxes.dtype == torch.float32
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert sample["labels"].dtype == torch.int64 and len(sample["labels"]) == len(boxes)
        assert sample["iscrowd"].dtype == torch.bool and not sample["iscrowd"].any()
        assert sample["image_id"] == index
        counts.add(len(boxes))
    assert counts <= {1, 2, 3, 4} and len(counts) > 1


def test_segmentation_mask_consistent_with_shapes():
    seg = make("segmentation", min_shapes=2, max_shapes=3)
    det = make("detection", min_shapes=2, max_shapes=3)
    assert seg.class_names == ["background", *SHAPE_NAMES]
    for index in range(len(seg)):
        mask = seg[index]["mask"]
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64 and mask.shape == (48, 48)
        present = set(mask.unique().tolist()) - {0}
        assert present <= {int(label) + 1 for label in det[index]["labels"]}
        inside = torch.zeros(48, 48, dtype=torch.bool)
        for x1, y1, x2, y2 in det[index]["boxes"].round().int().tolist():
            inside[y1:y2, x1:x2] = True
        assert not ((mask > 0) & ~inside).any()


def test_bad_options():
    with pytest.raises(DataError, match="split"):
        make("detection", split="training")
    with pytest.raises(DataError, match="task"):
        make("keypoints")
    with pytest.raises(DataError, match="min_shapes"):
        make("detection", min_shapes=3, max_shapes=2)


def test_coco_gt_loads_in_pycocotools():
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    data = make("detection")
    coco = COCO()
    coco.dataset = data.coco_gt()
    coco.createIndex()
    assert len(coco.getImgIds()) == len(data)
    assert len(coco.getAnnIds()) == sum(len(data[i]["labels"]) for i in range(len(data)))
