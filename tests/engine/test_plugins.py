"""A custom loss in a module outside the package, registered through the recipe's `imports:`."""

from __future__ import annotations

import csv
import sys
import textwrap

from tests.conftest import tiny_classification_recipe
from trainer.commands.train import train

PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn
    from trainer.registry import LOSSES


    @LOSSES.register("squared_margin_loss", heads={"classification": ("fc",)})
    class SquaredMarginLoss(nn.Module):
        def __init__(self, *, margin: float = 1.0) -> None:
            super().__init__()
            self.margin = margin

        def forward(self, *, logits, labels):
            target = nn.functional.one_hot(labels, logits.shape[1]).float() * self.margin
            return {"sq": ((logits - target) ** 2).mean()}
''')


def test_train_with_a_custom_loss(tmp_path, write_recipe, monkeypatch):
    (tmp_path / "my_plugin_loss.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = tiny_classification_recipe()
    recipe["imports"] = ["my_plugin_loss"]
    recipe["model"]["losses"] = [{"criterion": "squared_margin_loss", "margin": 2.0}]
    path = write_recipe(recipe)
    run = train(recipes=[str(path)], overrides=["training.epochs=1"], output_dir=str(tmp_path / "runs"), name="p")
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert float(rows[0]["train/squared_margin_loss/sq"]) > 0
    sys.modules.pop("my_plugin_loss", None)
