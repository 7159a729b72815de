import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from trainer.data.errors import DataError, DataWarning
from trainer.data.yolo import YoloDataset


def write_image(path, width=40, height=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 60, dtype=np.uint8)).save(path)


def write_labels(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_yolo(root, split="train"):
    write_image(root / "images" / split / "a.jpg")
    write_image(root / "images" / split / "b.png")  # no label file: an image with no boxes
    write_labels(root / "labels" / split / "a.txt", "0 0.5 0.5 0.5 0.5\n\n1 0.9 0.5 0.4 0.2\n")
    return root


def load(root, split="train", **options):
    options.setdefault("class_names", ["cat", "dog"])
    return YoloDataset(task="detection", split=split, root=str(root), **options)


def test_samples_and_clipping_warning(tmp_path):
    make_yolo(tmp_path)
    with pytest.warns(DataWarning, match="1 box.*clipped.*0 box"):
        data = load(tmp_path)
    assert len(data) == 2
    sample = data[0]
    assert isinstance(sample["boxes"], tv_tensors.BoundingBoxes) and tuple(sample["boxes"].canvas_size) == (20, 40)
    torch.testing.assert_close(
        sample["boxes"].as_subclass(torch.Tensor), torch.tensor([[10.0, 5, 30, 15], [28, 8, 40, 12]])
    )
    assert sample["labels"].tolist() == [0, 1] and not sample["iscrowd"].any()
    empty = data[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64 and empty["image_id"] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.5", r"a\.txt:2: expected 5 fields"),
        ("0 0.5 zero 0.5 0.5", r"a\.txt:2: 'zero' is not a number"),
        ("2 0.5 0.5 0.5 0.5", r"a\.txt:2: class id 2 is not one of the 2 classes"),
        ("-1 0.5 0.5 0.5 0.5", r"a\.txt:2: class id -1"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    make_yolo(tmp_path)
    write_labels(tmp_path / "labels" / "train" / "a.txt", f"0 0.5 0.5 0.5 0.5\n{line}\n")
    with pytest.raises(DataError, match=message):
        load(tmp_path)


def test_polygon_lines_become_boxes(tmp_path):
    make_yolo(tmp_path)
    write_labels(tmp_path / "labels" / "train" / "a.txt", "1 0.1 0.2 0.5 0.2 0.3 0.6\n")
    data = load(tmp_path)
    torch.testing.assert_close(data[0]["boxes"].as_subclass(torch.Tensor), torch.tensor([[4.0, 4, 20, 12]]))


def test_data_yaml(tmp_path):
    make_yolo(tmp_path / "ds", split="val")
    (tmp_path / "data.yaml").write_text("path: ds\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = YoloDataset(task="detection", split="val", data_yaml=str(tmp_path / "data.yaml"))
        assert data.class_names == ["cat", "dog"] and len(data) == 2
        with pytest.raises(DataError, match="differ"):
            YoloDataset(task="detection", split="val", data_yaml=str(tmp_path / "data.yaml"), class_names=["a", "b"])
    with pytest.raises(DataError, match="no 'test' entry"):
        YoloDataset(task="detection", split="test", data_yaml=str(tmp_path / "data.yaml"))


def test_missing_things(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        load(tmp_path)
    make_yolo(tmp_path)
    with pytest.raises(DataError, match="no class names"):
        YoloDataset(task="detection", split="train", root=str(tmp_path))


def test_coco_gt_in_pixels(tmp_path):
    make_yolo(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = load(tmp_path)
    gt = data.coco_gt()
    assert [image["id"] for image in gt["images"]] == [0, 1]
    assert (gt["images"][0]["width"], gt["images"][0]["height"]) == (40, 20)
    assert gt["annotations"][0]["bbox"] == pytest.approx([10, 5, 20, 10])
    assert gt["annotations"][0]["area"] == pytest.approx(200)
    assert [a["category_id"] for a in gt["annotations"]] == [0, 1]
