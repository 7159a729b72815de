"""What a run writes besides checkpoints and metrics.csv, behind the fit loop's few hook calls:

- TensorBoard scalars and images (`logging.tensorboard`), see `tensorboard_log`;
- MLflow params, metrics and artifacts (`logging.mlflow`), see `mlflow_log`;
- `plots/val_epoch_N.png` every `logging.val_images_every` epochs (and into TensorBoard), see
  `val_images`;
- at the end, `plots/curves.png`, `plots/confusion_matrix.png` or `plots/pr_curve.png`
  (`logging.plots`), see `plots`.

Only rank 0 writes. A plot that fails is reported and skipped: it never costs the trained run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from trainer.engine import plots
from trainer.engine.mlflow_log import MlflowExperiment
from trainer.engine.reporting import console
from trainer.engine.tensorboard_log import open_tensorboard
from trainer.engine.val_images import grid_tensor, save_validation_grid, validation_panels
from trainer.recipe import recipe_to_dict


class RunOutputs:
    def __init__(self, session: Any, run_dir: Path, *, main: bool, mlflow: MlflowExperiment | None = None) -> None:
        """`mlflow`: the store opened before the run directory was made (rank 0), or None."""
        self.session = session
        self.run_dir = run_dir
        self.main = main
        self.options = session.recipe.logging
        self.tensorboard = open_tensorboard(run_dir, enabled=self.options.tensorboard) if main else None
        self.mlflow = mlflow.start(run_dir, recipe=recipe_to_dict(session.recipe)) if main and mlflow else None

    def on_log(self, *, step: int, parts: dict[str, float], lr: float) -> None:
        if self.tensorboard is not None:
            self.tensorboard.steps(step=step, parts=parts, lr=lr)

    def on_validation(self, *, epoch: int, model: nn.Module) -> None:
        """`epoch` counts from 1; draws validation images every `val_images_every` epochs."""
        every = self.options.val_images_every
        if not self.main or every <= 0 or epoch % every != 0:
            return
        try:
            panels = validation_panels(session=self.session, model=model)
            save_validation_grid(panels, self.run_dir / "plots" / f"val_epoch_{epoch}.png",
                                 title=f"validation predictions after epoch {epoch}")
            if self.tensorboard is not None:
                self.tensorboard.image("val_images", grid_tensor(panels), epoch=epoch)
        except Exception as error:  # a drawing problem must not stop training; say what it was
            console.print(f"note: validation images for epoch {epoch} not written: {type(error).__name__}: {error}")

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        if self.tensorboard is not None:
            self.tensorboard.epoch(row)
        if self.mlflow is not None:
            self.mlflow.epoch(row)

    def abort(self, *, interrupted: bool) -> None:
        """The run stopped early (a RunFailure): close the trackers."""
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.mlflow is not None:
            self.mlflow.end("KILLED" if interrupted else "FAILED")

    def finish(self, evaluator: Any | None, *, epochs_done: int) -> None:
        """Call on every rank (the confusion matrix is summed across ranks); rank 0 writes."""
        matrix = None
        if self.options.plots and evaluator is not None:
            matrix = plots.confusion_matrix_of(evaluator)
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.main and self.options.plots:
            self._plots(evaluator, matrix, epochs_done=epochs_done)
        if self.mlflow is not None:
            self.mlflow.finish(self.run_dir)

    def _plots(self, evaluator: Any | None, matrix: Any, *, epochs_done: int) -> None:
        folder = self.run_dir / "plots"
        task = self.session.recipe.task
        jobs = [("curves", lambda: plots.plot_curves(self.run_dir / "metrics.csv", folder / "curves.png",
                                                      title=f"{task}: {self.run_dir.name}"))]
        if matrix is not None:
            jobs.append(("confusion matrix", lambda: plots.plot_confusion_matrix(
                matrix, self.session.class_names, folder / "confusion_matrix.png",
                title=f"confusion matrix, epoch {epochs_done}")))
        if evaluator is not None and hasattr(evaluator, "pr_curve"):
            jobs.append(("precision-recall curve", lambda: plots.plot_pr_curve(
                evaluator.pr_curve(), self.session.class_names, folder / "pr_curve.png",
                title=f"precision-recall at IoU 0.5, epoch {epochs_done}")))
        for name, job in jobs:
            try:
                job()
            except Exception as error:  # a plotting problem must not cost the trained run; say what it was
                console.print(f"note: {name} plot not written: {type(error).__name__}: {error}")
