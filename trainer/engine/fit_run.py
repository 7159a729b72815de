"""What the parts of the fit loop share: the session, the train state, the model as it trains
(wrapped for DDP / torch.compile), the run's outputs, the stop signal and the kept checkpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.engine import distributed
from trainer.engine.checkpoint import save_checkpoint
from trainer.engine.failures import KeptCheckpoint
from trainer.engine.reporting import MetricsCsv
from trainer.engine.run_outputs import RunOutputs
from trainer.engine.session import Session
from trainer.engine.stop_signal import StopSignal
from trainer.engine.train_state import TrainState, steps_per_epoch
from trainer.engine.train_step import StepState
from trainer.recipe import recipe_to_yaml


@dataclass
class FitRun:
    session: Session
    state: TrainState
    step_state: StepState
    run_dir: Path
    logger: logging.Logger
    outputs: RunOutputs
    stop: StopSignal
    best_metric: str
    main: bool = field(default_factory=distributed.is_main_process)
    last_metrics: dict[str, float] = field(default_factory=dict)
    evaluator: Any = None  # the last validation's, for the final plots

    def __post_init__(self) -> None:
        self.micro_steps = steps_per_epoch(self.session)
        self.csv_log = MetricsCsv(self.run_dir / "metrics.csv", rows=self.state.history) if self.main else None
        self.recipe_yaml = recipe_to_yaml(self.session.recipe)

    @property
    def kept(self) -> KeptCheckpoint:
        return self.stop.kept

    def checkpoint_path(self, name: str) -> Path:
        return self.run_dir / "checkpoints" / name

    def save(self, names: list[str], *, description: str) -> None:
        """Write the state to checkpoints/<name> for each name (rank 0), then every rank records
        `description` as the checkpoint kept."""
        if self.main:
            phase, self.stop.phase = self.stop.phase, "writing checkpoints"
            payload = {
                **self.state.state_dict(), "recipe": self.recipe_yaml, "task": self.session.recipe.task,
                "class_names": self.session.class_names, "best_metric": self.best_metric,
            }
            for name in names:
                save_checkpoint(payload, self.checkpoint_path(name))
                if name == "last.pt":
                    self.kept.description = f"{self.checkpoint_path(name)} ({description})"
            self.stop.phase = phase
        self.kept.description = f"{self.checkpoint_path('last.pt')} ({description})"
