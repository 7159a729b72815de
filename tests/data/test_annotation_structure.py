"""Malformed annotation files are DataErrors naming the file and the bad entry, never a raw
KeyError / TypeError / UnicodeDecodeError; all problems of a file are reported together."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from trainer.data.coco import CocoDataset
from trainer.data.errors import DataError
from trainer.data.mask_folder import MaskFolderDataset
from trainer.data.yolo import YoloDataset


def good_coco() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}],
        "categories": [{"id": 1, "name": "cat"}],
    }


def load_coco(tmp_path, data):
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    path = tmp_path / "instances.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return CocoDataset(task="detection", split="val", images_dir=str(tmp_path), annotations=str(path))


def changed(**edits):
    data = good_coco()
    for key, value in edits.items():
        section, _, rest = key.partition("__")
        if rest:
            data[section][0][rest] = value
        else:
            data[section] = value
    return data


def without(section, key):
    data = good_coco()
    del data[section][0][key]
    return data


CASES = {
    "category without name": (without("categories", "name"), r"categories\[0\]\.name: expected a non-empty string"),
    "annotations a string": (changed(annotations="oops"), r"annotations: expected a list, got \"oops\""),
    "width a string": (changed(images__width="8"), r"images\[0\]\.width: expected an integer, got \"8\""),
    "images of numbers": (changed(images=[1, 2]), r"images\[0\]: expected a mapping, got 1"),
    "bbox with a string": (changed(annotations__bbox=[1, "x", 2, 2]), r"annotations\[0\]\.bbox: expected 4 numbers"),
    "bbox too short": (changed(annotations__bbox=[1, 2]), r"annotations\[0\]\.bbox: expected 4 numbers, got \[1, 2\]"),
    "negative height": (changed(images__height=-3), r"images\[0\]\.height: expected an integer >= 1, got -3"),
    "unknown image": (changed(annotations__image_id=7), r"annotations\[0\]\.image_id: 7 is not the id of any image"),
    "area not a number": (changed(annotations__area="big"), r"annotations\[0\]\.area: expected a finite number"),
    "no categories": (changed(categories=[]), r"categories: the list is empty"),
    "top level a list": ([1, 2], r"the file: expected a mapping"),
    "not COCO": ({"info": {}}, "not a COCO instances file"),
    "bad JSON": ('{"images": [', r"invalid JSON"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_coco_structure_errors_name_file_and_entry(tmp_path, case):
    data, message = CASES[case]
    with pytest.raises(DataError, match=rf"instances\.json(:\d+)?: .*{message}"):
        load_coco(tmp_path, data)


def test_coco_reports_every_bad_entry_together(tmp_path):
    data = good_coco()
    data["annotations"] = [{"id": i, "image_id": 1, "category_id": 1, "bbox": "x"} for i in range(12)]
    with pytest.raises(DataError) as caught:
        load_coco(tmp_path, data)
    lines = str(caught.value).splitlines()
    assert lines[0].endswith('annotations[0].bbox: expected 4 numbers, got "x"')
    assert "annotations[9].bbox" in lines[9] and "2 more" in lines[10]


def write_bytes(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_non_utf8_coco_json(tmp_path):
    path = write_bytes(tmp_path / "instances.json", b'{"images": [], "categories": [{"id": 1, "name": "caf\xe9"}]}')
    with pytest.raises(DataError, match=r"instances\.json:1: not UTF-8 text"):
        CocoDataset(task="detection", split="val", images_dir=str(tmp_path), annotations=str(path))


def yolo_root(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(write_bytes(tmp_path / "images" / "train" / "a.png", b""))
    return tmp_path


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("labels/train/a.txt", b"0 0.5 0.5 0.2 0.2\n1 0.5 caf\xe9 0.2 0.2\n", r"a\.txt:2: not UTF-8 text"),
        ("labels/train/a.txt", b"\xff\xfe0\x00 \x00", r"a\.txt: is UTF-16 text"),
        ("classes.txt", b"cat\n\xe9\n", r"classes\.txt:2: not UTF-8 text"),
        ("data.yaml", b"names: [caf\xe9]\n", r"data\.yaml:1: not UTF-8 text"),
        ("data.yaml", b"names: [a, b\n", r"data\.yaml:\d+: invalid YAML"),
        ("data.yaml", b"names: 3\n", r"data\.yaml: names: expected a list, got 3"),
        ("data.yaml", b"names: {0: a, 2: b}\n", r"data\.yaml: names: expected a list or a mapping 0\.\.K-1"),
        ("data.yaml", b"train: 5\nnames: [a]\n", r"data\.yaml: train: expected a folder"),
        ("data.yaml", b"- a\n- b\n", r"data\.yaml: the file: expected a mapping"),
        ("data.yaml", b"=\n", r"data\.yaml:1: invalid YAML: could not determine a constructor"),  # found by fuzzing
        ("data.yaml", b"names: [a]\nval: 2001-13-45\n", r"data\.yaml: invalid YAML value: month must be"),
    ],
)
def test_yolo_files_that_cannot_be_read(tmp_path, file, content, message):
    root = yolo_root(tmp_path)
    write_bytes(root / file, content)
    options = {"data_yaml": str(root / file)} if file == "data.yaml" else {}
    if file.startswith("labels"):
        options["class_names"] = ["a", "b"]
    with pytest.raises(DataError, match=message):
        YoloDataset(task="detection", split="train", root=str(root), **options)


def test_every_bad_label_file_is_reported(tmp_path):
    root = yolo_root(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "images" / "train" / "b.png")
    write_bytes(root / "labels" / "train" / "a.txt", b"0 0.5 0.5 0.2\n")
    write_bytes(root / "labels" / "train" / "b.txt", b"0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match=r"(?s)a\.txt:1: expected 5 fields.*\n.*b\.txt:2: class id 7"):
        YoloDataset(task="detection", split="train", root=str(root), class_names=["a"])


def test_empty_class_list_for_masks(tmp_path):
    write_bytes(tmp_path / "classes.txt", b"\n  \n")
    with pytest.raises(DataError, match=r"classes\.txt: no class names"):
        MaskFolderDataset(task="segmentation", split="train", root=str(tmp_path))
