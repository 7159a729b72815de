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
