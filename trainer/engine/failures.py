"""The failures of a run that was built and started: one family, exit code 1 at the command line.

Each message says what happened in words, which checkpoint was kept, and how to resume
(`trainer train --resume RUN_DIR`). Bad input found before the run starts is not a RunFailure
(RecipeError, DataError, CheckpointError: exit code 2).
"""

from __future__ import annotations


class RunFailure(Exception):
    """A run stopped before its end; the message is complete (what, what was kept, how to resume)."""


class NonFiniteLossError(RunFailure):
    """The loss or the weights became NaN or infinite."""


class Interrupted(RunFailure):
    """SIGINT or SIGTERM: the run stopped in order."""


class DataFailure(RunFailure):
    """Bad data met during the run (e.g. a corrupt image in epoch 3)."""


class StepFailure(RunFailure):
    """An exception raised by the model, a loss or the evaluation during an epoch."""


class WriteFailure(RunFailure):
    """An output (a checkpoint, metrics.csv) could not be written: disk full, permissions."""


class KeptCheckpoint:
    """Which checkpoint a run has on disk, for the message of a failure: set after every write."""

    def __init__(self, run_dir: object, description: str | None = None) -> None:
        self.run_dir = run_dir
        self.description = description  # e.g. "runs/a/checkpoints/last.pt (after epoch 2)"

    def tail(self) -> str:
        """What was kept and how to go on, the end of every RunFailure message."""
        if self.description is None:
            return "no checkpoint had been written yet"
        return (f"the last good checkpoint is kept: {self.description}; "
                f"resume with: trainer train --resume {self.run_dir}")
