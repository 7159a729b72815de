"""Images of different sizes without a fixed-size transform are found while building, before any
batch and before anything is written; data problems of every split are reported together."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import tiny_classification_recipe
from trainer.data.errors import DataError
from trainer.data.image_folder import ImageFolderDataset
from trainer.data.sizes import check_batchable, final_effect


def image(path, height, width):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(path)


def folder(root, sizes):
    for index, (height, width) in enumerate(sizes):
        image(root / ("cat" if index % 2 else "dog") / f"{index}.png", height, width)
    return ImageFolderDataset(task="classification", split="train", root=str(root))


@pytest.mark.parametrize(
    ("transforms", "effect"),
    [
        ([], "keeps"),
        ([{"name": "hflip"}, {"name": "normalize"}], "keeps"),
        ([{"name": "resize", "size": [32, 48]}], "fixed"),
        ([{"name": "resize", "size": 32}], "aspect"),
        ([{"name": "letterbox", "size": 64}, {"name": "hflip"}], "fixed"),
        ([{"name": "random_zoom_out"}], "random"),
        ([{"name": "random_scale"}, {"name": "random_crop", "size": 32, "pad_if_needed": True}], "fixed"),
        ([{"name": "center_crop", "size": 32}, {"name": "random_iou_crop"}], "random"),
    ],
)
def test_final_effect(transforms, effect):
    assert final_effect(transforms)[0] == effect


def test_mixed_sizes_need_a_fixed_size_transform(tmp_path):
    data = folder(tmp_path, [(16, 16), (16, 16), (20, 16)])
    with pytest.raises(DataError, match=r"differ in size \(.*1\.png is 16x16, .*2\.png is 16x20\).*resize, size: \[H"):
        check_batchable(data, transforms=[{"name": "hflip"}], batch_size=4, section="augmentation.train")
    check_batchable(data, transforms=[{"name": "resize", "size": [16, 16]}], batch_size=4, section="a")
    check_batchable(data, transforms=[], batch_size=1, section="a")  # batches of one always stack
    with pytest.raises(DataError, match="different aspect ratios"):
        check_batchable(data, transforms=[{"name": "resize", "size": 8}], batch_size=4, section="a")


def test_same_aspect_ratio_with_shorter_side_resize(tmp_path):
    data = folder(tmp_path, [(16, 32), (8, 16)])
    check_batchable(data, transforms=[{"name": "resize", "size": 8}], batch_size=2, section="a")


def test_random_size_without_a_fixed_size_after_it(tmp_path):
    data = folder(tmp_path, [(16, 16), (16, 16)])
    with pytest.raises(DataError, match="'random_zoom_out' gives every image its own random size"):
        check_batchable(data, transforms=[{"name": "random_zoom_out"}], batch_size=2, section="augmentation.train")


def _recipe(write_recipe, root, **training):
    recipe = tiny_classification_recipe()
    recipe["data"] = {"format": "image_folder", "train": {"root": str(root / "train")},
                      "val": {"root": str(root / "val")}}
    recipe["training"].update(batch_size=2, epochs=1, **training)
    return write_recipe(recipe)


def test_check_and_train_refuse_mixed_sizes_before_writing(tmp_path, cli, write_recipe):
    folder(tmp_path / "data" / "train", [(16, 16), (16, 16), (16, 16), (24, 16)])
    folder(tmp_path / "data" / "val", [(16, 16), (16, 16)])
    recipe = _recipe(write_recipe, tmp_path / "data")
    result = cli("check", recipe)
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "data.train: images differ in size" in output and "augmentation.train" in output and "3.png" in output
    result = cli("train", recipe, "--output-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "images differ in size" in " ".join(result.output.split())
    assert not (tmp_path / "runs").exists()


def test_problems_of_every_split_are_reported_together(tmp_path, cli, write_recipe):
    folder(tmp_path / "data" / "val", [(16, 16), (8, 8)])
    recipe = _recipe(write_recipe, tmp_path / "data")  # data/train does not exist
    result = cli("check", recipe)
    assert result.exit_code == 2
    val, train = [line for line in result.output.splitlines() if "recipe.yaml:" in line]
    assert "data.val: images differ in size" in val and "augmentation.val" in val
    assert "data.train: image_folder: root directory not found" in train


def test_a_data_error_from_an_override_names_the_override(tmp_path, cli, write_recipe):
    folder(tmp_path / "data" / "train", [(16, 16), (16, 16)])
    folder(tmp_path / "data" / "val", [(16, 16), (16, 16)])
    recipe = _recipe(write_recipe, tmp_path / "data")
    result = cli("check", recipe, f"data.val.root={tmp_path / 'nowhere'}")
    assert result.exit_code == 2
    assert "override 'data.val.root=" in result.output and "data.val: image_folder: root directory not found" in (
        " ".join(result.output.split()))
