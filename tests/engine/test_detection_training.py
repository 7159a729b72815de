"""Detection end to end: `trainer train` + `trainer eval --json` for both detection losses, a short
run of the shipped RetinaNet recipe whose mAP50 clearly rises, mosaic switched off for the last
epochs, and the COCO / YOLO loaders through the whole `trainer check` path."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import ROOT

YOLOX_ARCH = {
    "backbone": {"name": "cspdarknet_nano"},
    "neck": {"name": "pafpn", "depthwise": True},
    "head": {"name": "anchor_free_decoupled", "depthwise": True},
}
RETINANET_ARCH = {
    "backbone": {"name": "resnet18"},
    "neck": {"name": "fpn", "out_channels": 32, "extra_levels": "p6p7"},
    "head": {"name": "anchor_decoupled", "anchor_scale": 1.0},
}
ZERO_ONE = {"name": "normalize", "mean": [0, 0, 0], "std": [1, 1, 1]}


def tiny_detection_recipe(criterion: str = "yolox_loss", *, image_size: int = 32, train: int = 16, val: int = 8):
    return {
        "task": "detection",
        "data": {
            "format": "shapes",
            "train": {"num_images": train, "image_size": image_size},
            "val": {"num_images": val, "image_size": image_size},
        },
        "augmentation": {"train": [{"name": "hflip"}, ZERO_ONE], "val": [ZERO_ONE]},
        "model": {
            "architecture": YOLOX_ARCH if criterion == "yolox_loss" else RETINANET_ARCH,
            "losses": [{"criterion": criterion}],
        },
        "training": {"epochs": 1, "batch_size": 8, "optimizer": {"name": "adamw", "lr": 0.002}},
        "logging": {"progress": "none", "plots": False},
        "environment": {"num_workers": 0},
    }


@pytest.mark.slow
@pytest.mark.parametrize("criterion", ["yolox_loss", "retinanet_loss"])
def test_train_then_eval_json(criterion, tmp_path, write_recipe, cli):
    path = write_recipe(tiny_detection_recipe(criterion))
    result = cli("train", path, "--output-dir", tmp_path / "runs", "--name", "det")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "det"
    rows = _rows(run / "metrics.csv")
    assert len(rows) == 1 and {"val/mAP50_95", "val/mAP50", "val/mAP75"} <= set(rows[0])
    assert any(key.startswith(f"train/{criterion}/") for key in rows[0])
    out = tmp_path / "eval.json"
    result = cli("eval", run, "--json", out)
    assert result.exit_code == 0, result.output
    assert "per-class AP" in result.output
    payload = json.loads(out.read_text())
    assert payload["task"] == "detection"
    assert set(payload["metrics"]) == {"mAP50_95", "mAP50", "mAP75"}
    assert all(0.0 <= v <= 1.0 for v in payload["metrics"].values())


@pytest.mark.slow
def test_shipped_retinanet_shapes_recipe_learns(tmp_path, cli):
    """The shipped RetinaNet shapes recipe on fewer images for two epochs (160 steps): val mAP50
    rises from the untrained model's (about 0) and from the first epoch to the second."""
    recipe = ROOT / "recipes" / "detection" / "retinanet_r18_shapes.yaml"
    shorter = ("data.train.num_images=1280", "data.val.num_images=64", "training.epochs=2",
               "logging.progress=none", "logging.plots=false", "environment.num_workers=0")
    untrained = tmp_path / "untrained.json"
    assert cli("eval", recipe, *shorter, "--json", untrained).exit_code == 0
    result = cli("train", recipe, *shorter, "--output-dir", tmp_path / "runs", "--name", "rise")
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "runs" / "rise" / "metrics.csv")
    first, last = float(rows[0]["val/mAP50"]), float(rows[-1]["val/mAP50"])
    before = json.loads(untrained.read_text())["metrics"]["mAP50"]
    assert last > first and last > before + 0.12, (before, [row["val/mAP50"] for row in rows])


def test_mosaic_wraps_train_data_and_turns_off_for_the_last_epochs(tmp_path):
    from trainer.data.mosaic import MosaicMixupDataset
    from trainer.engine.session import build_session
    from trainer.recipe import load_recipe

    recipe = tiny_detection_recipe(image_size=40)
    recipe["augmentation"]["mosaic"] = {"prob": 1.0, "mixup_prob": 0.5, "off_last_epochs": 1}
    recipe["training"]["epochs"] = 3
    loaded = load_recipe([_write(recipe, tmp_path)], [])
    session = build_session(loaded, device=torch.device("cpu"))
    wrapped = session.train_set.dataset
    assert isinstance(wrapped, MosaicMixupDataset) and wrapped.output_size == (40, 40)
    base = wrapped.dataset
    plain = base[3]
    for epoch in (0, 1):
        sample = session.train_set[(epoch, 3)]
        assert wrapped.enabled and sample["image"].shape == (3, 40, 40)
        assert not torch.equal(sample["image"], plain["image"])  # a mosaic, not the image itself
    sample = session.train_set[(2, 3)]  # the last epoch: mosaic off
    assert not wrapped.enabled
    assert torch.equal(sample["image"], plain["image"]) or torch.equal(sample["image"], plain["image"].flip(-1))
    batch = session.task.collate([session.train_set[(0, i)] for i in range(4)])
    assert batch["images"].shape == (4, 3, 40, 40)


def test_mosaic_size_comes_from_the_fixed_size_transform(tmp_path):
    from trainer.engine.session import build_session
    from trainer.recipe import load_recipe

    recipe = tiny_detection_recipe(image_size=40)
    recipe["augmentation"]["train"] = [{"name": "letterbox", "size": [32, 48]}, ZERO_ONE]
    recipe["augmentation"]["val"] = [{"name": "letterbox", "size": [32, 48]}, ZERO_ONE]
    recipe["augmentation"]["mosaic"] = {"prob": 1.0}
    session = build_session(load_recipe([_write(recipe, tmp_path)], []), device=torch.device("cpu"))
    assert session.train_set.dataset.output_size == (32, 48)
    assert session.train_set[(0, 0)]["image"].shape == (3, 32, 48)


def _rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _write(recipe: dict, folder):
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _image(path, width, height, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).save(path)


def _file_recipe(data: dict, write_recipe) -> object:
    recipe = tiny_detection_recipe()
    recipe["data"] = data
    letterbox = {"name": "letterbox", "size": 64}
    recipe["augmentation"] = {"train": [letterbox, {"name": "hflip"}, ZERO_ONE], "val": [letterbox, ZERO_ONE]}
    recipe["training"]["batch_size"] = 3
    return write_recipe(recipe)


def test_coco_data_through_check(tmp_path, write_recipe, cli):
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 80, "height": 60},
        {"id": 2, "file_name": "b.png", "width": 50, "height": 70},
        {"id": 3, "file_name": "c.jpg", "width": 64, "height": 64},  # no annotations
    ]
    for seed, image in enumerate(images):
        _image(tmp_path / "images" / image["file_name"], image["width"], image["height"], seed)
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 30, 20], "area": 600, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 9, "bbox": [40, 5, 30, 40], "area": 1200, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 9, "bbox": [0, 0, 50, 70], "area": 3500, "iscrowd": 1},
        {"id": 4, "image_id": 2, "category_id": 5, "bbox": [5, 30, 20, 20], "area": 400, "iscrowd": 0},
    ]
    categories = [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}]
    (tmp_path / "ann.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    split = {"images_dir": str(tmp_path / "images"), "annotations": str(tmp_path / "ann.json")}
    path = _file_recipe({"format": "coco", "train": split, "val": split}, write_recipe)
    result = cli("check", path)
    assert result.exit_code == 0, result.output
    assert "recipe OK" in result.output and "(3, 3, 64, 64)" in result.output
    # and evaluation over it (an untrained model: metrics exist and are fractions)
    out = tmp_path / "eval.json"
    result = cli("eval", path, "--json", out)
    assert result.exit_code == 0, result.output
    assert set(json.loads(out.read_text())["metrics"]) == {"mAP50_95", "mAP50", "mAP75"}


def test_yolo_data_through_check(tmp_path, write_recipe, cli):
    root = tmp_path / "yolo"
    for split in ("train", "val"):
        _image(root / "images" / split / "a.jpg", 96, 64, 1)
        _image(root / "images" / split / "b.png", 40, 40, 2)  # no label file: no boxes
        _image(root / "images" / split / "c.png", 64, 80, 3)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.4 0.5\n1 0.2 0.3 0.2 0.2\n")
        (root / "labels" / split / "c.txt").write_text("1 0.5 0.5 0.9 0.9\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                                    "names": {0: "cat", 1: "dog"}}))
    data_yaml = str(root / "data.yaml")
    path = _file_recipe({"format": "yolo", "train": {"data_yaml": data_yaml}, "val": {"data_yaml": data_yaml}},
                        write_recipe)
    result = cli("check", path)
    assert result.exit_code == 0, result.output
    assert "recipe OK" in result.output and "(3, 3, 64, 64)" in result.output


def test_images_of_different_sizes_without_resize_is_a_clear_error(tmp_path, write_recipe, cli):
    root = tmp_path / "yolo"
    for split in ("train", "val"):
        _image(root / "images" / split / "a.jpg", 96, 64, 1)
        _image(root / "images" / split / "b.png", 40, 40, 2)
    (root / "classes.txt").write_text("cat\n")
    recipe = tiny_detection_recipe()
    recipe["data"] = {"format": "yolo", "train": {"root": str(root)}, "val": {"root": str(root)}}
    result = cli("check", write_recipe(recipe))
    assert result.exit_code == 2
    assert "letterbox" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "recipes" / "detection").glob("*shapes.yaml")))
def test_shipped_shapes_recipes_check(name, cli):
    result = cli("check", ROOT / "recipes" / "detection" / name, "data.train.num_images=8", "data.val.num_images=4",
                 "training.batch_size=4", "environment.num_workers=0")
    assert result.exit_code == 0, result.output
