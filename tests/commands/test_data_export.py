"""`trainer data shapes` writes files the project's loaders read back as the same samples;
`trainer data convert` goes YOLO <-> COCO without changing boxes or labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from trainer.data.coco import CocoDataset
from trainer.data.image_folder import ImageFolderDataset
from trainer.data.mask_folder import MaskFolderDataset
from trainer.data.shapes import ShapesDataset
from trainer.data.yolo import YoloDataset

N, SIZE = 5, 32
LOADERS = {"image_folder": ImageFolderDataset, "coco": CocoDataset, "yolo": YoloDataset,
           "mask_folder": MaskFolderDataset}
CASES = [("classification", "image_folder"), ("detection", "coco"), ("detection", "yolo"),
         ("segmentation", "mask_folder")]


def _export(cli, out, task, fmt, *extra):
    result = cli("data", "shapes", "--task", task, "--format", fmt, "--out", out, "--num-images", N,
                 "--image-size", SIZE, *extra)
    assert result.exit_code == 0, result.output
    return yaml.safe_load((out / "recipe_data.yaml").read_text())["data"]


def _assert_same_detection(left: dict, right: dict, *, atol: float) -> None:
    assert torch.equal(left["labels"], right["labels"])
    assert torch.allclose(torch.as_tensor(left["boxes"]), torch.as_tensor(right["boxes"]), atol=atol)


@pytest.mark.parametrize(("task", "fmt"), CASES, ids=[fmt for _, fmt in CASES])
def test_shapes_round_trip(tmp_path, cli, task, fmt):
    data = _export(cli, tmp_path / "out", task, fmt)
    assert data["format"] == fmt and set(data) == {"format", "train", "val"}
    for split in ("train", "val"):
        loaded = LOADERS[fmt](task=task, split=split, **data[split])
        original = ShapesDataset(task=task, split=split, num_images=N, image_size=SIZE)
        assert len(loaded) == N and list(loaded.class_names) == list(original.class_names)
        for index in range(N):
            source = index
            if fmt == "image_folder":  # samples are ordered by class folder; the file name keeps the index
                source = int(loaded.samples[index][0].stem.rsplit("_", 1)[1])
            got, expected = loaded[index], original[source]
            assert torch.equal(torch.as_tensor(got["image"]), torch.as_tensor(expected["image"]))  # PNG: lossless
            if task == "classification":
                assert got["label"] == expected["label"]
            elif task == "segmentation":
                assert torch.equal(torch.as_tensor(got["mask"]), torch.as_tensor(expected["mask"]))
            else:
                _assert_same_detection(got, expected, atol=1e-3 if fmt == "yolo" else 1e-4)


def test_exported_data_section_trains(tmp_path, cli, write_recipe):
    """The written recipe_data.yaml merges after a recipe, and `trainer check` runs a batch on it."""
    _export(cli, tmp_path / "out", "classification", "image_folder")
    recipe = {"task": "classification", "model": {"architecture": {"backbone": {"name": "resnet18"}},
                                                  "losses": [{"criterion": "cross_entropy"}]},
              "training": {"batch_size": 4}, "environment": {"num_workers": 0}}
    result = cli("check", write_recipe(recipe), tmp_path / "out" / "recipe_data.yaml")
    assert result.exit_code == 0, result.output
    assert "5 / 5" in result.output  # train / val images


def test_shapes_refuses_bad_requests(tmp_path, cli):
    result = cli("data", "shapes", "--task", "detection", "--format", "mask_folder", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "coco or yolo" in result.output
    result = cli("data", "shapes", "--task", "detection", "--format", "coco", "--out", tmp_path / "x",
                 "--split", "train,dev")
    assert result.exit_code == 2 and "dev" in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = cli("data", "shapes", "--task", "detection", "--format", "coco", "--out", tmp_path / "full")
    assert result.exit_code == 2 and "not overwriting" in result.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_yolo_to_coco_and_back(tmp_path, cli):
    data = _export(cli, tmp_path / "yolo", "detection", "yolo", "--split", "val")
    original = YoloDataset(task="detection", split="val", **data["val"])

    coco_json = tmp_path / "val.json"
    result = cli("data", "convert", tmp_path / "yolo", "--from", "yolo", "--to", "coco", "--split", "val",
                 "--out", coco_json)
    assert result.exit_code == 0, result.output
    payload = json.loads(coco_json.read_text())
    assert [c["id"] for c in payload["categories"]] == [1, 2, 3, 4]
    assert min(a["id"] for a in payload["annotations"]) == 1
    as_coco = CocoDataset(task="detection", split="val", images_dir=str(tmp_path / "yolo" / "images" / "val"),
                          annotations=str(coco_json))
    assert as_coco.class_names == original.class_names and len(as_coco) == len(original)
    for index in range(len(original)):
        _assert_same_detection(as_coco[index], original[index], atol=1e-4)

    result = cli("data", "convert", coco_json, "--from", "coco", "--to", "yolo", "--split", "val",
                 "--images-dir", tmp_path / "yolo" / "images" / "val", "--out", tmp_path / "back")
    assert result.exit_code == 0, result.output
    back = YoloDataset(task="detection", split="val", root=str(tmp_path / "back"))  # names from classes.txt
    via_yaml = YoloDataset(task="detection", split="val", data_yaml=str(tmp_path / "back" / "data.yaml"))
    assert back.class_names == via_yaml.class_names == original.class_names
    for index in range(len(original)):
        _assert_same_detection(back[index], original[index], atol=1e-3)
        _assert_same_detection(via_yaml[index], original[index], atol=1e-3)


def test_coco_to_yolo_skips_crowd_and_keeps_classes_by_id(tmp_path, cli):
    data = _export(cli, tmp_path / "coco", "detection", "coco", "--split", "train")
    annotations = data["train"]["annotations"]
    payload = json.loads(Path(annotations).read_text())
    payload["annotations"][0]["iscrowd"] = 1
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(payload))
    result = cli("data", "convert", edited, "--from", "coco", "--to", "yolo", "--images-dir",
                 data["train"]["images_dir"], "--out", tmp_path / "yolo", "--symlink")
    assert result.exit_code == 0, result.output
    assert "1 crowd annotation(s) left out" in result.output
    converted = YoloDataset(task="detection", split="train", root=str(tmp_path / "yolo"))
    source = CocoDataset(task="detection", split="train", images_dir=data["train"]["images_dir"],
                         annotations=str(edited))
    first = source[0]
    keep = ~first["iscrowd"]
    got = converted[0]
    assert torch.equal(got["labels"], first["labels"][keep])
    assert np.allclose(np.asarray(got["boxes"]), np.asarray(first["boxes"])[keep.numpy()], atol=1e-3)
    for index in range(1, N):
        _assert_same_detection(converted[index], source[index], atol=1e-3)


def test_convert_refuses_bad_requests(tmp_path, cli):
    result = cli("data", "convert", tmp_path / "nope", "--from", "yolo", "--to", "coco", "--out", tmp_path / "a.json")
    assert result.exit_code == 2 and "not found" in result.output
    result = cli("data", "convert", tmp_path / "x.json", "--from", "coco", "--to", "voc", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "yolo -> coco" in result.output
    result = cli("data", "convert", tmp_path / "x.json", "--from", "coco", "--to", "yolo", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "--images-dir" in result.output


def _tiny_coco(tmp_path: Path, file_name: str) -> Path:
    """A one-image COCO file whose image is `file_name` (relative to tmp_path/src/images)."""
    from PIL import Image

    images = tmp_path / "src" / "images"
    images.mkdir(parents=True, exist_ok=True)
    target = images / file_name if not Path(file_name).is_absolute() else Path(file_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(target.with_suffix(".png"))
    path = tmp_path / "src" / "instances.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": file_name, "width": 8, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
        "categories": [{"id": 1, "name": "box"}],
    }))
    return path


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("file_name", "message"), [("../../victim.png", "leads outside"),
                                                    ("{tmp}/victim.png", "is an absolute path")])
def test_convert_never_writes_outside_out(tmp_path, cli, file_name, message):
    file_name = file_name.format(tmp=tmp_path)
    annotations = _tiny_coco(tmp_path, file_name)
    before = _files(tmp_path)
    result = cli("data", "convert", annotations, "--from", "coco", "--to", "yolo", "--images-dir",
                 tmp_path / "src" / "images", "--out", tmp_path / "out" / "yolo", "--force")
    assert result.exit_code == 2 and message in result.output and "images[0].file_name" in result.output
    assert _files(tmp_path) == before and not (tmp_path / "out").exists()


def test_convert_does_not_follow_a_symlink_out_of_out(tmp_path, cli):
    annotations = _tiny_coco(tmp_path, "a.png")
    (tmp_path / "elsewhere").mkdir()
    out = tmp_path / "out"
    (out / "labels").mkdir(parents=True)
    (out / "labels" / "train").symlink_to(tmp_path / "elsewhere")
    result = cli("data", "convert", annotations, "--from", "coco", "--to", "yolo", "--images-dir",
                 tmp_path / "src" / "images", "--out", out, "--force")
    assert result.exit_code == 2 and "outside" in result.output
    assert not any((tmp_path / "elsewhere").iterdir())


def test_convert_and_shapes_overwrite_only_with_force(tmp_path, cli):
    annotations = _tiny_coco(tmp_path, "a.png")
    out = tmp_path / "yolo"
    arguments = ("data", "convert", annotations, "--from", "coco", "--to", "yolo", "--images-dir",
                 tmp_path / "src" / "images", "--out", out)
    assert cli(*arguments).exit_code == 0
    label = out / "labels" / "train" / "a.txt"
    label.write_text("edited\n")
    result = cli(*arguments)
    assert result.exit_code == 2 and "--force" in result.output and label.read_text() == "edited\n"
    assert cli(*arguments, "--force").exit_code == 0 and label.read_text().startswith("0 ")

    coco_json = tmp_path / "back.json"
    coco_json.write_text("keep me")
    back = ("data", "convert", out, "--from", "yolo", "--to", "coco", "--out", coco_json)
    result = cli(*back)
    assert result.exit_code == 2 and "exists" in result.output and coco_json.read_text() == "keep me"
    assert cli(*back, "--force").exit_code == 0 and json.loads(coco_json.read_text())["images"]

    shapes = ("data", "shapes", "--task", "detection", "--format", "yolo", "--out", out, "--num-images", 2,
              "--image-size", 16)
    result = cli(*shapes)
    assert result.exit_code == 2 and "not empty" in result.output and label.read_text().startswith("0 ")
    assert cli(*shapes, "--force").exit_code == 0 and (out / "images" / "val").is_dir()


def test_shapes_with_force_does_not_write_through_a_folder_link(tmp_path, cli):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "images").symlink_to(tmp_path / "elsewhere")
    result = cli("data", "shapes", "--task", "detection", "--format", "coco", "--out", out, "--num-images", 2,
                 "--image-size", 16, "--force")
    assert result.exit_code == 2 and "outside" in result.output
    assert not any((tmp_path / "elsewhere").iterdir())
