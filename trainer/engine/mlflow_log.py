"""MLflow tracking (`logging.mlflow.tracking_uri` set; the `trainer[mlflow]` extra).

Logs the resolved recipe as params (`training.optimizer.lr`, ...), every epoch's metrics.csv row
as metrics (x = epoch), and at the end best.pt, metrics.csv, recipe.yaml and the plots as
artifacts. Only rank 0 logs. The store is opened before the run directory is made (a bad URI is a
recipe error); a resumed run continues its MLflow run (its id is kept in RUN/mlflow_run.json).
A tracking call that fails later is reported once and logging stops: it never costs the run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from trainer.engine.reporting import console
from trainer.recipe import RecipeError, RecipeIssue

RUN_FILE = "mlflow_run.json"
BATCH = 100  # MLflow's limit of params per log_batch call
PARAM_LENGTH = 6000  # MLflow's limit of a param value's length


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts and lists as `a.b.0.c` keys with string values (empty containers kept as `[]` / `{}`)."""
    if isinstance(value, dict) and value:
        items = value.items()
    elif isinstance(value, list) and value:
        items = enumerate(value)
    else:
        return {prefix: str(value)[:PARAM_LENGTH]}
    flat: dict[str, str] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


class MlflowExperiment:
    """An MLflow store and experiment, opened (and checked) before the run starts."""

    def __init__(self, *, tracking_uri: str, experiment: str, run_name: str | None) -> None:
        where = ("logging", "mlflow", "tracking_uri")
        try:
            from mlflow import MlflowClient
        except ImportError as error:
            problem = f"MLflow cannot be imported ({error}); install it: pip install 'trainer[mlflow]'"
            raise RecipeError([RecipeIssue(where, problem)]) from None
        self.tracking_uri, self.run_name = tracking_uri, run_name
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        except Exception as error:  # MlflowException, OSError, connection errors: all mean "cannot use it"
            raise RecipeError([RecipeIssue(where, f"cannot open the MLflow store {tracking_uri!r}: "
                                                  f"{type(error).__name__}: {error}")]) from None

    def start(self, run_dir: Path, *, recipe: dict[str, Any]) -> MlflowLog:
        """The MLflow run for `run_dir`: the one it logged to before (a resumed run), else a new one."""
        record = run_dir / RUN_FILE
        previous = json.loads(record.read_text()) if record.is_file() else {}
        if previous.get("tracking_uri") == self.tracking_uri:
            run_id = previous["run_id"]
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=self.run_name or run_dir.name,
                                         tags={"trainer.run_dir": str(run_dir)})
            run_id = run.info.run_id
            record.write_text(json.dumps({"tracking_uri": self.tracking_uri, "run_id": run_id}) + "\n")
        log = MlflowLog(self.client, run_id)
        log.params(flatten(recipe))
        return log


class MlflowLog:
    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.working = True

    def _call(self, what: str, action) -> None:
        if not self.working:
            return
        try:
            action()
        except Exception as error:  # tracking must not cost the trained run; say what it was, once
            self.working = False
            console.print(f"note: MLflow logging stopped ({what}): {type(error).__name__}: {error}")

    def params(self, params: dict[str, str]) -> None:
        """Log `params`, leaving out those the run already has (a resumed run may not change them)."""
        from mlflow.entities import Param

        def log() -> None:
            logged = self.client.get_run(self.run_id).data.params
            new = [Param(key, value) for key, value in params.items() if key not in logged]
            for start in range(0, len(new), BATCH):
                self.client.log_batch(self.run_id, params=new[start:start + BATCH])

        self._call("params", log)

    def epoch(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        epoch, stamp = int(row["epoch"]), int(time.time() * 1000)
        metrics = [Metric(key, float(value), stamp, epoch) for key, value in row.items()
                   if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value)]
        self._call(f"epoch {epoch}", lambda: self.client.log_batch(self.run_id, metrics=metrics))

    def finish(self, run_dir: Path) -> None:
        """Artifacts (best.pt, metrics.csv, recipe.yaml, plots/) and the run marked FINISHED."""
        def log() -> None:
            for path, folder in ((run_dir / "checkpoints" / "best.pt", "checkpoints"),
                                 (run_dir / "metrics.csv", None), (run_dir / "recipe.yaml", None)):
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path), artifact_path=folder)
            if (run_dir / "plots").is_dir():
                self.client.log_artifacts(self.run_id, str(run_dir / "plots"), artifact_path="plots")

        self._call("artifacts", log)
        self.end("FINISHED")

    def end(self, status: str) -> None:
        """Mark the run FINISHED, FAILED or KILLED."""
        self._call("end", lambda: self.client.set_terminated(self.run_id, status=status))
