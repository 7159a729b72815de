"""Segmentation end to end: `trainer train` + `trainer eval --json` for PIDNet (pidnet_loss) and
ResNet-18 + seg_head (cross_entropy), a PIDNet run whose mIoU clearly rises with a non-zero boundary
loss and a trained D branch, and mask_folder PNGs through the whole `trainer check` path."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

ZERO_ONE = {"name": "normalize", "mean": [0, 0, 0], "std": [1, 1, 1]}
D_BRANCH = ("layer3_d.", "layer4_d.", "layer5_d.", "diff3.", "diff4.", "seghead_d.")
# what the boundary head reads: the D branch up to layer4_d (layer5_d feeds the fusion with P and I)
BOUNDARY_PATH = ("layer3_d.", "layer4_d.", "diff3.", "diff4.", "seghead_d.")


def tiny_segmentation_recipe(criterion: str = "pidnet_loss", *, image_size: int = 32, train: int = 16, val: int = 8):
    architecture = {"full": {"name": "pidnet", "size": "s"}} if criterion == "pidnet_loss" else {
        "backbone": {"name": "resnet18"}, "head": {"name": "seg_head", "hidden_channels": 32}}
    loss = {"criterion": criterion}
    if criterion == "pidnet_loss":
        loss["min_kept"] = 256
    return {
        "task": "segmentation",
        "data": {
            "format": "shapes",
            "train": {"num_images": train, "image_size": image_size},
            "val": {"num_images": val, "image_size": image_size},
        },
        "augmentation": {"train": [{"name": "hflip"}, ZERO_ONE], "val": [ZERO_ONE]},
        "model": {"architecture": architecture, "losses": [loss]},
        "training": {"epochs": 1, "batch_size": 8, "optimizer": {"name": "adamw", "lr": 0.002}},
        "logging": {"progress": "none", "plots": False},
        "environment": {"num_workers": 0},
    }


def read_rows(run):
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("criterion", ["pidnet_loss", "cross_entropy"])
def test_train_then_eval_json(criterion, tmp_path, write_recipe, cli):
    path = write_recipe(tiny_segmentation_recipe(criterion))
    result = cli("train", path, "--output-dir", tmp_path / "runs", "--name", "seg")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "seg"
    rows = read_rows(run)
    assert len(rows) == 1 and {"val/mIoU", "val/pixel_acc"} <= set(rows[0])
    parts = {"pidnet_loss": ("semantic", "boundary", "boundary_aware"), "cross_entropy": ("ce",)}[criterion]
    assert {f"train/{criterion}/{part}" for part in parts} <= set(rows[0])
    out = tmp_path / "eval.json"
    result = cli("eval", run, "--json", out)
    assert result.exit_code == 0, result.output
    assert "per-class IoU" in result.output and "background" in result.output
    payload = json.loads(out.read_text())
    assert payload["task"] == "segmentation"
    assert set(payload["metrics"]) == {"mIoU", "pixel_acc"}
    assert all(0.0 <= v <= 1.0 for v in payload["metrics"].values())
    assert payload["metrics"]["mIoU"] == pytest.approx(float(rows[0]["val/mIoU"]), abs=1e-6)


def write_colour_rectangles(root, *, split: str, count: int, size: int, seed: int) -> None:
    """mask_folder PNGs: a red and a blue rectangle (classes 1 and 2) on grey, with pixel noise.
    The class follows from the colour, so a from-scratch PIDNet learns it in a few dozen steps
    (the random-colour `shapes` need hundreds)."""
    rng = np.random.default_rng(seed)
    colours = {1: (200, 40, 40), 2: (40, 40, 200)}
    for index in range(count):
        image = np.full((size, size, 3), 110, dtype=np.int16) + rng.integers(-15, 16, (size, size, 3))
        mask = np.zeros((size, size), dtype=np.uint8)
        for label in colours:
            height, width = rng.integers(size // 4, size // 2, 2)
            top, left = rng.integers(0, size - height), rng.integers(0, size - width)
            mask[top : top + height, left : left + width] = label
        for label, colour in colours.items():
            image[mask == label] = np.array(colour) + rng.integers(-15, 16, (int((mask == label).sum()), 3))
        for folder, array in (("images", np.clip(image, 0, 255).astype(np.uint8)), ("masks", mask)):
            path = root / folder / split / f"{index:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)


@pytest.mark.slow
def test_pidnet_miou_rises_boundary_loss_trains_the_d_branch(tmp_path, write_recipe, cli):
    """A small PIDNet run (about a minute on 2 CPU cores): val mIoU clearly above the first epoch's
    and the untrained model's; the boundary part is non-zero throughout and moves the D branch."""
    data = tmp_path / "data"
    write_colour_rectangles(data, split="train", count=96, size=48, seed=0)
    write_colour_rectangles(data, split="val", count=16, size=48, seed=1)
    recipe = tiny_segmentation_recipe()
    options = {"root": str(data), "class_names": ["background", "red", "blue"]}
    recipe["data"] = {"format": "mask_folder", "train": dict(options), "val": dict(options)}
    recipe["augmentation"] = {"train": [{"name": "hflip"}, {"name": "normalize"}], "val": [{"name": "normalize"}]}
    recipe["training"].update(epochs=5, batch_size=8, optimizer={"name": "adamw", "lr": 0.003},
                              scheduler={"name": "poly", "warmup_epochs": 0.5})
    path = write_recipe(recipe)
    untrained = tmp_path / "untrained.json"
    assert cli("eval", path, "--json", untrained).exit_code == 0
    result = cli("train", path, "--output-dir", tmp_path / "runs", "--name", "rise")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "rise"
    rows = read_rows(run)
    first, last = float(rows[0]["val/mIoU"]), float(rows[-1]["val/mIoU"])
    before = json.loads(untrained.read_text())["metrics"]["mIoU"]
    assert last > max(first, before) + 0.15 and last > 0.35, (before, [row["val/mIoU"] for row in rows])
    assert all(float(row["train/pidnet_loss/boundary"]) > 0 for row in rows)

    # the D branch moved away from its initialisation (same seed -> same initial weights)
    from trainer.components import load_builtin_components
    from trainer.engine.device import seed_everything
    from trainer.engine.session import build_session
    from trainer.recipe import load_recipe

    load_builtin_components()
    loaded = load_recipe([path])
    seed_everything(loaded.recipe.environment.seed)
    initial = build_session(loaded, device=torch.device("cpu"), for_training=False).model.state_dict()
    trained = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    for prefix in D_BRANCH:
        names = [n for n in initial if n.startswith(prefix) and n.endswith("weight")]
        assert names and any(not torch.equal(initial[n], trained[n]) for n in names), prefix


def test_boundary_part_alone_reaches_the_d_branch(tmp_path, write_recipe):
    """One forward/backward of the session's loss with only the boundary part optimised."""
    from trainer.components import load_builtin_components
    from trainer.engine.session import build_session
    from trainer.recipe import load_recipe

    load_builtin_components()
    recipe = tiny_segmentation_recipe()
    recipe["model"]["losses"][0]["exclude"] = ["semantic", "boundary_aware"]
    session = build_session(load_recipe([write_recipe(recipe)]), device=torch.device("cpu"))
    batch = session.prepare_batch(next(iter(session.train_loader)))
    model = session.model.train()
    total, parts = session.loss_module({**batch, **model(batch["images"]), "epoch": 0})
    assert parts["pidnet_loss/boundary"] > 0
    total.backward()
    for name, parameter in model.named_parameters():
        if name.startswith(BOUNDARY_PATH) and name.endswith("weight"):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# --- mask_folder through `trainer check` ---------------------------------------------------------

CLASSES = ["background", "square", "bar"]


def write_mask_folder(root, *, count: int = 4, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for index in range(count):
            image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            mask = np.zeros((size, size), dtype=np.uint8)
            mask[4:14, 4:14] = 1
            mask[20:24, 2:30] = 2
            mask[0, :] = 255  # ignore
            image[mask == 1] = (220, 40, 40)
            image[mask == 2] = (40, 220, 40)
            for folder, array in (("images", image), ("masks", mask)):
                path = root / folder / split / f"img_{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)


def mask_folder_recipe(root) -> dict:
    recipe = tiny_segmentation_recipe("cross_entropy")
    options = {"root": str(root), "class_names": CLASSES}
    recipe["data"] = {"format": "mask_folder", "train": dict(options), "val": dict(options)}
    recipe["augmentation"]["train"] = [{"name": "random_crop", "size": 24}, {"name": "hflip"}, ZERO_ONE]
    recipe["training"]["batch_size"] = 2
    return recipe


def test_mask_folder_through_check(tmp_path, write_recipe, cli):
    write_mask_folder(tmp_path / "data")
    result = cli("check", write_recipe(mask_folder_recipe(tmp_path / "data")))
    assert result.exit_code == 0, result.output
    assert "recipe OK" in result.output
    assert "(2, 3, 24, 24)" in result.output and "loss/cross_entropy/ce" in result.output


def test_mask_folder_missing_mask_exits_2_naming_the_file(tmp_path, write_recipe, cli):
    write_mask_folder(tmp_path / "data")
    (tmp_path / "data" / "masks" / "val" / "img_2.png").unlink()
    result = cli("check", write_recipe(mask_folder_recipe(tmp_path / "data")))
    assert result.exit_code == 2
    assert "img_2.png has no mask" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("split", ["train", "val"])
def test_mask_folder_out_of_range_class_exits_2_naming_the_file(split, tmp_path, write_recipe, cli):
    write_mask_folder(tmp_path / "data")
    bad = tmp_path / "data" / "masks" / split / "img_0.png"
    mask = np.array(Image.open(bad))
    mask[10, 10] = 7
    Image.fromarray(mask).save(bad)
    result = cli("check", write_recipe(mask_folder_recipe(tmp_path / "data")))
    assert result.exit_code == 2, result.output
    assert str(bad) in result.output and "class id(s) [7]" in result.output
    assert "Traceback" not in result.output
