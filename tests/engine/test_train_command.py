"""The train / eval command contract: run directory contents, eval JSON, never overwriting."""

from __future__ import annotations

import csv
import json

from tests.conftest import ROOT, tiny_classification_recipe


def test_train_then_eval_json(tmp_path, write_recipe, cli):
    path = write_recipe(tiny_classification_recipe())
    result = cli("train", path, "training.epochs=1", "--output-dir", tmp_path / "runs", "--name", "r1")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "r1"
    for name in ("recipe.yaml", "metrics.csv", "train.log", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert str(run) in result.output
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 1 and {"epoch", "lr", "val/top1", "seconds"} <= set(rows[0])
    out = tmp_path / "out.json"
    result = cli("eval", run, "--json", out)
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["task"] == "classification"
    assert set(payload["metrics"]) == {"top1", "top5"}
    assert all(0.0 <= v <= 1.0 for v in payload["metrics"].values())
    # the same name again never overwrites: a new directory is made and named
    result = cli("train", path, "training.epochs=1", "--output-dir", tmp_path / "runs", "--name", "r1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "r1-2" / "checkpoints" / "last.pt").is_file()


def test_typos_exit_2_with_suggestion_and_no_traceback(tmp_path, cli):
    recipe = ROOT / "recipes" / "classification" / "resnet18_shapes.yaml"
    result = cli("check", recipe, "model.losses.0.criterion=focal")
    assert result.exit_code == 2
    assert "focal_loss" in result.output and "Traceback" not in result.output
    result = cli("train", recipe, "training.epoch=3", "--output-dir", tmp_path)
    assert result.exit_code == 2
    assert "epochs" in result.output and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_resolved_recipe_reproduces_the_run(tmp_path, write_recipe, cli):
    path = write_recipe(tiny_classification_recipe())
    assert cli("train", path, "training.epochs=1", "--output-dir", tmp_path / "runs", "--name", "a").exit_code == 0
    saved = tmp_path / "runs" / "a" / "recipe.yaml"
    result = cli("train", saved, "--output-dir", tmp_path / "runs", "--name", "b")
    assert result.exit_code == 0, result.output
    first = (tmp_path / "runs" / "a" / "metrics.csv").read_text().splitlines()[1].split(",")
    second = (tmp_path / "runs" / "b" / "metrics.csv").read_text().splitlines()[1].split(",")
    assert first[:-1] == second[:-1]  # all but the seconds column
