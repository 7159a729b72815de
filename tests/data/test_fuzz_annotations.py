"""Property-based: each annotation parser, fed random and mutated input, either loads it or raises
a DataError whose message names the file; never any other exception."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from trainer.data.class_names import read_class_file
from trainer.data.coco import CocoDataset
from trainer.data.errors import DataError
from trainer.data.yolo import YoloDataset, parse_label_file
from trainer.data.yolo_yaml import images_from_entries, load_data_yaml

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                    st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)


def valid_coco() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8},
                   {"id": 2, "file_name": "a.png", "width": 8, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0},
                        {"id": 2, "image_id": 2, "category_id": 4, "bbox": [0, 2, 3, 3]}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
    }


def _paths(value, prefix=()):
    """Every (path to a value) in a nested dict/list, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def mutated_coco(draw):
    """A valid COCO dict with a few values replaced by random JSON values, or deleted."""
    data = valid_coco()
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        if not path:
            return draw(json_values)
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(json_values)
        elif isinstance(parent, dict):
            del parent[path[-1]]
    return data


def _workdir(folder: Path) -> Path:
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "a.png")
    (folder / "list.txt").write_text("a.png\nmissing.png\n")
    return folder


def _assert_names_file(error: DataError, path: Path) -> None:
    assert str(path) in str(error) or path.name in str(error), str(error)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return _workdir(tmp_path_factory.mktemp("fuzz"))


@FUZZ
@given(content=st.one_of(mutated_coco().map(lambda data: json.dumps(data).encode()),
                         json_values.map(lambda value: json.dumps(value).encode()), st.binary(max_size=64)))
@pytest.mark.filterwarnings("ignore::trainer.data.errors.DataWarning")
def test_coco_parser(workdir, content):
    path = workdir / "instances.json"
    path.write_bytes(content)
    try:
        data = CocoDataset(task="detection", split="val", images_dir=str(workdir), annotations=str(path))
        samples = [data[index] for index in range(len(data))]  # a size that differs from the file names it
    except DataError as error:
        _assert_names_file(error, path)
        return
    assert all(sample["boxes"].shape[-1] == 4 for sample in samples)


label_tokens = st.sampled_from(["0", "1", "2", "-1", "0.5", "1e3", "nan", "inf", "-inf", "x", "0x1", "", "0.", ".5",
                                "1_0", "\t", "\u00e9", "\x00", "3.0"])
label_lines = st.lists(label_tokens, max_size=9).map(" ".join)


@FUZZ
@given(lines=st.lists(label_lines, max_size=5), raw=st.one_of(st.none(), st.binary(max_size=32)))
def test_yolo_label_parser(workdir, lines, raw):
    path = workdir / "labels.txt"
    path.write_bytes(raw if raw is not None else "\n".join(lines).encode())
    try:
        boxes, labels = parse_label_file(path, num_classes=2)
    except DataError as error:
        _assert_names_file(error, path)
        return
    assert boxes.shape == (len(labels), 4) and np.isfinite(boxes).all() and set(labels.tolist()) <= {0, 1}


yaml_specs = st.fixed_dictionaries(
    {},
    optional={key: json_values for key in ("path", "train", "val", "test", "names", "nc")}
    | {"names": st.one_of(json_values, st.lists(st.text(max_size=4), max_size=3)),
       "val": st.one_of(json_values, st.sampled_from([".", "a.png", "missing", "../x", "list.txt"]))},
)


@FUZZ
@given(content=st.one_of(yaml_specs.map(lambda spec: yaml.safe_dump(spec).encode()), st.binary(max_size=64),
                         json_values.map(lambda value: yaml.safe_dump(value).encode())))
@pytest.mark.filterwarnings("ignore::trainer.data.errors.DataWarning")
def test_yolo_data_yaml_parser(workdir, content):
    path = workdir / "data.yaml"
    path.write_bytes(content)
    try:
        spec = load_data_yaml(path)
        if "val" in spec.entries:
            images_from_entries(spec, "val")
        YoloDataset(task="detection", split="val", data_yaml=str(path))
    except DataError as error:
        if "image folder not found" in str(error) or "no images in" in str(error):
            return  # a names-only yaml: the folder layout under the yaml's folder is what is missing
        _assert_names_file(error, path)


@FUZZ
@given(content=st.one_of(st.binary(max_size=48), st.lists(st.text(max_size=6), max_size=5).map(
    lambda names: "\n".join(names).encode("utf-8", "surrogatepass"))))
def test_class_list_parser(workdir, content):
    path = workdir / "classes.txt"
    path.write_bytes(content)
    try:
        names = read_class_file(path)
    except DataError as error:
        _assert_names_file(error, path)
        return
    assert names and len(set(names)) == len(names) and all(name.strip() == name and name for name in names)
