"""The data layouts people have on disk, and every source of class names, load as the same samples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from trainer.data.coco import CocoDataset
from trainer.data.errors import DataError, DataWarning
from trainer.data.image_folder import ImageFolderDataset
from trainer.data.mask_folder import MaskFolderDataset
from trainer.data.yolo import YoloDataset

NAMES = ["cat", "dog"]


def image(path, size=(20, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 90, dtype=np.uint8)).save(path)


def text(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def yolo_files(images, labels):
    """Two images, one with a label file (class 1); returns nothing: the layout is the caller's."""
    image(images / "a.png")
    image(images / "b.png")
    text(labels / "a.txt", "1 0.5 0.5 0.5 0.5\n")


def yolo(**options):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return YoloDataset(task="detection", split="val", **options)


def assert_yolo(data):
    assert data.class_names == NAMES and len(data) == 2
    assert data[0]["labels"].tolist() == [1] and data[1]["labels"].tolist() == []


YOLO_LAYOUTS = {
    "images/split": lambda root: yolo_files(root / "images" / "val", root / "labels" / "val"),
    "split/images": lambda root: yolo_files(root / "val" / "images", root / "val" / "labels"),
    "roboflow valid/images": lambda root: yolo_files(root / "valid" / "images", root / "valid" / "labels"),
}


@pytest.mark.parametrize("layout", list(YOLO_LAYOUTS))
def test_yolo_root_layouts(tmp_path, layout):
    YOLO_LAYOUTS[layout](tmp_path)
    assert_yolo(yolo(root=str(tmp_path), class_names=NAMES))


def test_yolo_explicit_folders(tmp_path):
    yolo_files(tmp_path / "pictures", tmp_path / "boxes")
    assert_yolo(yolo(images_dir=str(tmp_path / "pictures"), labels_dir=str(tmp_path / "boxes"), class_names=NAMES))


@pytest.mark.parametrize(
    "spec",
    [
        "path: ds\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n",  # path relative to the yaml
        "train: ds/images/train\nval: [ds/images/val]\nnames: {0: cat, 1: dog}\n",  # no path: the yaml's folder
        "train: ../ds/images/train\nval: ../ds/images/val\nnc: 2\nnames: [cat, dog]\n",  # Roboflow's ../
    ],
)
def test_yolo_data_yaml_relative_paths(tmp_path, spec):
    yolo_files(tmp_path / "ds" / "images" / "val", tmp_path / "ds" / "labels" / "val")
    assert_yolo(yolo(data_yaml=str(text(tmp_path / "data.yaml", spec))))


def test_yolo_names_only_data_yaml(tmp_path):
    yolo_files(tmp_path / "val" / "images", tmp_path / "val" / "labels")
    spec = text(tmp_path / "data.yaml", "names: [cat, dog]\n")
    assert_yolo(yolo(data_yaml=str(spec)))
    assert_yolo(yolo(root=str(tmp_path)))  # found in root without being named


@pytest.mark.parametrize("source", ["list", "file", "file in root", "classes.txt"])
def test_yolo_class_name_sources(tmp_path, monkeypatch, source):
    yolo_files(tmp_path / "images" / "val", tmp_path / "labels" / "val")
    options = {"root": str(tmp_path)}
    if source == "list":
        options["class_names"] = NAMES
    elif source == "file":
        options["class_names"] = str(text(tmp_path / "elsewhere" / "names.txt", "cat\n\ndog\n"))
    elif source == "file in root":
        monkeypatch.chdir(tmp_path / "images")
        text(tmp_path / "names.txt", "cat\ndog\n")
        options["class_names"] = "names.txt"
    else:
        text(tmp_path / "classes.txt", "cat\ndog\n")
    assert_yolo(yolo(**options))


def masks(images, mask_dir, stems=("a", "b")):
    for stem in stems:
        image(images / f"{stem}.jpg", size=(6, 8))
        mask = np.zeros((6, 8), dtype=np.uint8)
        mask[1:3, 2:5] = 1
        mask_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(mask_dir / f"{stem}.png")


MASK_LAYOUTS = {
    "images/split": lambda root: masks(root / "images" / "val", root / "masks" / "val"),
    "split/images": lambda root: masks(root / "val" / "images", root / "val" / "masks"),
}


@pytest.mark.parametrize("layout", list(MASK_LAYOUTS))
@pytest.mark.parametrize("names", ["list", "classes.txt", "file"])
def test_mask_folder_layouts_and_class_names(tmp_path, layout, names):
    MASK_LAYOUTS[layout](tmp_path)
    options = {"root": str(tmp_path)}
    if names == "list":
        options["class_names"] = ["background", "road"]
    elif names == "classes.txt":
        text(tmp_path / "classes.txt", "background\nroad\n")
    else:
        options["class_names"] = str(text(tmp_path / "x" / "labels.txt", "background\nroad\n"))
    data = MaskFolderDataset(task="segmentation", split="val", **options)
    assert data.class_names == ["background", "road"] and len(data) == 2
    assert set(data[0]["mask"].unique().tolist()) == {0, 1}


def test_mask_folder_explicit_folders(tmp_path):
    masks(tmp_path / "rgb", tmp_path / "labels")
    data = MaskFolderDataset(task="segmentation", split="train", images_dir=str(tmp_path / "rgb"),
                             masks_dir=str(tmp_path / "labels"), class_names=["background", "road"])
    assert [pair[0].name for pair in data.pairs] == ["a.jpg", "b.jpg"]
    with pytest.raises(DataError, match="no class names.*classes.txt"):
        MaskFolderDataset(task="segmentation", split="train", root=str(tmp_path / "rgb"))


def test_missing_layout_names_what_was_looked_for(tmp_path):
    with pytest.raises(DataError, match=r"images/train/.*train/images/"):
        MaskFolderDataset(task="segmentation", split="train", root=str(tmp_path), class_names=["a"])


@pytest.mark.parametrize("split", ["train", "val"])
def test_image_folder_class_named_like_a_split(tmp_path, split):
    image(tmp_path / "train" / "1.png")
    image(tmp_path / "val" / "2.png")
    image(tmp_path / "other" / "3.png")
    data = ImageFolderDataset(task="classification", split=split, root=str(tmp_path))
    assert data.class_names == ["other", "train", "val"] and len(data) == 3


def test_image_folder_split_folders_and_class_file(tmp_path):
    image(tmp_path / "train" / "dog" / "1.png")
    image(tmp_path / "train" / "cat" / "2.png")
    names = text(tmp_path / "names.txt", "dog\ncat\n")
    data = ImageFolderDataset(task="classification", split="train", root=str(tmp_path), class_names=str(names))
    assert data.class_names == ["dog", "cat"] and [label for _, label in data.samples] == [0, 1]


def test_coco_class_names_from_a_file(tmp_path):
    import json

    image(tmp_path / "images" / "a.png")
    annotations = text(tmp_path / "instances.json", json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 20}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}],
    }))
    data = CocoDataset(task="detection", split="val", images_dir=str(tmp_path / "images"),
                       annotations=str(annotations), class_names=str(text(tmp_path / "c.txt", "cat\ndog\n")))
    assert data.class_names == NAMES and data[0]["labels"].tolist() == [0]


@pytest.mark.parametrize(("content", "message"), [("\n\n", "no class names"), ("a\nb\na\n", "'a' appears twice")])
def test_bad_class_files(tmp_path, content, message):
    yolo_files(tmp_path / "images" / "val", tmp_path / "labels" / "val")
    path = text(tmp_path / "classes.txt", content)
    with pytest.raises(DataError, match=rf"{path}: .*{message}"):
        yolo(root=str(tmp_path))
