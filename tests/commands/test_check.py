"""`trainer check` prints a model summary and writes nothing."""

from __future__ import annotations

import os
import warnings

from tests.conftest import tiny_classification_recipe


def _tree(root) -> set[str]:
    return {os.path.relpath(os.path.join(folder, name), root) for folder, dirs, files in os.walk(root)
            for name in dirs + files}


def test_check_prints_summary_and_writes_nothing(tmp_path, write_recipe, cli, monkeypatch):
    recipe = tiny_classification_recipe()
    recipe["logging"].update({"plots": True, "tensorboard": True, "val_images_every": 1,
                              "output_dir": str(tmp_path / "runs")})
    path = write_recipe(recipe)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli("check", path)
    assert result.exit_code == 0, result.output
    for text in ("parameters", "output logits", "(8, 4)", "loss/cross_entropy/ce", "loss/total", "recipe OK"):
        assert text in result.output, text
    assert _tree(tmp_path) == before  # no run directory, plots, TensorBoard files or caches
    assert not [w for w in caught if "requires_grad" in str(w.message)]  # float(total) on a graph tensor


def test_check_runs_the_optimizer_the_scheduler_and_a_batch_of_each_split(tmp_path, write_recipe, cli, monkeypatch):
    recipe = tiny_classification_recipe()
    recipe["training"]["scheduler"] = {"name": "cosine", "warmup_epochs": 1}
    monkeypatch.chdir(tmp_path)
    result = cli("check", write_recipe(recipe))
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    for text in ("optimizer", "SGD, lr after one step", "scheduler", "val/top1 (one batch)", "val/top5 (one batch)"):
        assert text in output, text


def test_check_loads_a_batch_of_the_val_split(tmp_path, write_recipe, cli, monkeypatch):
    """An image whose header reads but whose pixels do not, in the val split only: found by check."""
    from PIL import Image

    for split in ("train", "val"):
        for name in ("a", "b"):
            (tmp_path / "images" / split / name).mkdir(parents=True)
            for index in range(2):
                Image.new("RGB", (32, 32), (40 + 60 * index, 90, 90)).save(tmp_path / "images" / split / name /
                                                                           f"{index}.png")
    bad = tmp_path / "images" / "val" / "a" / "0.png"
    bad.write_bytes(bad.read_bytes()[:60])
    recipe = tiny_classification_recipe(data={"format": "image_folder", "train": {"root": str(tmp_path / "images")},
                                              "val": {"root": str(tmp_path / "images")}})
    recipe["training"]["batch_size"] = 2
    monkeypatch.chdir(tmp_path)
    result = cli("check", write_recipe(recipe))
    assert result.exit_code == 2, result.output
    assert str(bad) in " ".join(result.output.split())
