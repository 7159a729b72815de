"""`logging.mlflow`: a real local MLflow store in a temp folder, read back with the MLflow client."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_classification_recipe

mlflow = pytest.importorskip("mlflow", reason="the trainer[mlflow] extra")


def _recipe(tracking_uri: str) -> dict:
    recipe = tiny_classification_recipe()
    recipe["data"]["train"]["num_images"] = 16
    recipe["data"]["val"]["num_images"] = 8
    recipe["training"]["epochs"] = 1
    recipe["logging"].update(plots=True, mlflow={"tracking_uri": tracking_uri, "experiment": "shapes"})
    return recipe


@pytest.mark.slow
def test_a_run_logs_params_metrics_and_artifacts(tmp_path, write_recipe, cli, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    store = (tmp_path / "mlruns").as_uri()
    result = cli("train", write_recipe(_recipe(store)), "--output-dir", tmp_path / "runs", "--name", "m")
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("shapes").experiment_id])
    assert run.info.run_name == "m" and run.info.status == "FINISHED"
    assert run.data.params["training.optimizer.lr"] == "0.02"
    assert run.data.params["model.architecture.backbone.name"] == "resnet18"
    assert run.data.params["augmentation.train.0.name"] == "hflip"
    history = client.get_metric_history(run.info.run_id, "val/top1")
    assert [(m.step, 0.0 <= m.value <= 1.0) for m in history] == [(1, True)]
    assert {"train/total", "lr", "seconds"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoints", "plots", "metrics.csv", "recipe.yaml"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    assert "plots/curves.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}


def test_a_store_that_cannot_be_opened_is_a_recipe_error_before_the_run(tmp_path, write_recipe, cli):
    result = cli("train", write_recipe(_recipe("nosuchscheme://host/x")), "--output-dir", tmp_path / "runs")
    assert result.exit_code == 2, result.output
    assert "logging.mlflow.tracking_uri" in result.output and "nosuchscheme" in result.output
    assert not (tmp_path / "runs").exists()
