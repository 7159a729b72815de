"""The fit loop, the same for every task: train an epoch, validate, checkpoint, stop when asked.

The state it trains (model, EMA, optimizer, scheduler, scaler, counters, RNG) is a TrainState built
and, for a resumed run, restored and checked beforehand (trainer.engine.resume). Every failure
during the loop leaves as a RunFailure that says what happened, what was kept and how to resume.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainer.data.errors import DataError, worker_error_message
from trainer.engine import distributed
from trainer.engine.epoch import train_epoch
from trainer.engine.evaluate import evaluate
from trainer.engine.failures import DataFailure, Interrupted, KeptCheckpoint, RunFailure, StepFailure, WriteFailure
from trainer.engine.fit_run import FitRun
from trainer.engine.reporting import console, metrics_table, say
from trainer.engine.run_outputs import RunOutputs
from trainer.engine.session import Session
from trainer.engine.stop_signal import StopSignal, signal_name
from trainer.engine.train_state import TrainState
from trainer.engine.train_step import StepState
from trainer.engine.training_model import training_model


def fit(
    session: Session, state: TrainState, *, run_dir: Path, outputs: RunOutputs, logger: logging.Logger
) -> None:
    """Train `state` from its counters to training.epochs (or an early stop); rank 0 writes the run
    (checkpoints, metrics.csv) and `outputs` (TensorBoard, MLflow, plots)."""
    run = _start(session, state, run_dir=run_dir, outputs=outputs, logger=logger)
    try:
        with run.stop:  # a second signal at any moment stops at once, in words
            with failures_in_words(run):
                train_epochs(run)
            run.stop.phase = "writing the final plots and trackers"
            outputs.finish(run.evaluator, epochs_done=state.counters.epoch)
    except RunFailure as failure:
        outputs.abort(interrupted=isinstance(failure, Interrupted))
        raise
    if run.main and run.last_metrics:
        console.print(metrics_table(run.last_metrics, title=f"validation after epoch {state.counters.epoch}"))


def train_epochs(run: FitRun) -> None:
    """Epochs from the state's counters to training.epochs: train, validate, checkpoint, stop?"""
    for epoch in range(run.state.counters.epoch, run.session.recipe.training.epochs):
        started = time.perf_counter()
        means = train_epoch(run, epoch)
        row, improved = validate(run, epoch=epoch, means=means)
        row["seconds"] = round(time.perf_counter() - started, 3)
        end_epoch(run, epoch=epoch, row=row, improved=improved)
        if stop_after_epoch(run, epoch=epoch):
            break


def _start(
    session: Session, state: TrainState, *, run_dir: Path, outputs: RunOutputs, logger: logging.Logger
) -> FitRun:
    training = session.recipe.training
    model = training_model(session, state.model, amp=state.amp_dtype, logger=logger)
    step_state = StepState(
        model=model, loss_module=session.loss_module, optimizer=state.optimizer, scheduler=state.scheduler,
        scaler=state.scaler, ema=state.ema, device=session.device, amp_dtype=state.amp_dtype,
        grad_clip=training.grad_clip, accumulation=training.grad_accum_steps,
    )
    counters = state.counters
    kept = KeptCheckpoint(run_dir)
    if counters.epoch or counters.step_in_epoch:  # resumed: last.pt holds this state
        at = f"epoch {counters.epoch + 1}, step {counters.step_in_epoch}" if counters.step_in_epoch else (
            f"after epoch {counters.epoch}")
        kept.description = f"{run_dir / 'checkpoints' / 'last.pt'} ({at})"
    return FitRun(
        session=session, state=state, step_state=step_state, run_dir=run_dir, logger=logger,
        outputs=outputs, stop=StopSignal(kept),
        best_metric=training.best_metric or session.task.default_best_metric,
    )


@contextmanager
def failures_in_words(run: FitRun) -> Iterator[None]:
    """Any exception of the loop as a RunFailure: what happened, where, what was kept, how to resume."""
    try:
        yield
    except RunFailure:
        raise
    except DataError as error:  # the data was fine while building, so this is a failure during the run
        raise DataFailure(f"bad data during {run.stop.phase}: {worker_error_message(error)}; "
                          f"{run.kept.tail()}") from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            what = "disk full" if error.errno == errno.ENOSPC else "disk quota exceeded"
            raise WriteFailure(f"{what} ({error.strerror}) while writing {error.filename}; "
                               f"{run.kept.tail()}") from error
        raise StepFailure(f"{type(error).__name__}: {error} during {run.stop.phase}; {run.kept.tail()}") from error
    except Exception as error:
        message = worker_error_message(error) or "(no message)"
        raise StepFailure(f"{type(error).__name__}: {message} during {run.stop.phase}; {run.kept.tail()}") from error


def _better(value: float, best: float | None, min_delta: float) -> bool:
    return best is None or value > best + min_delta


def validate(run: FitRun, *, epoch: int, means: dict[str, float]) -> tuple[dict[str, Any], bool]:
    """The epoch's metrics.csv row (validated every training.val_every epochs and after the last)
    and whether the best metric improved."""
    training, state = run.session.recipe.training, run.state
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": state.optimizer.param_groups[0]["lr"]}
    row.update({f"train/{name}": value for name, value in means.items()})
    if (epoch + 1) % training.val_every != 0 and epoch + 1 != training.epochs:
        return row, False
    run.stop.phase = f"validation after epoch {epoch + 1}"
    eval_model = state.ema.module if state.ema is not None else state.model
    metrics, run.evaluator = evaluate(model=eval_model, session=run.session, amp_dtype=state.amp_dtype)
    run.outputs.on_validation(epoch=epoch + 1, model=eval_model)
    run.last_metrics = metrics
    row.update({f"val/{name}": value for name, value in metrics.items()})
    counters, value = state.counters, metrics[run.best_metric]
    improved = _better(value, counters.best_value, training.early_stopping.min_delta)
    counters.best_value = value if improved else counters.best_value
    counters.stale_validations = 0 if improved else counters.stale_validations + 1
    return row, improved


def end_epoch(run: FitRun, *, epoch: int, row: dict[str, Any], improved: bool) -> None:
    """Log the row, write last.pt (and best.pt when improved) and metrics.csv."""
    state = run.state
    run.stop.phase = f"the end of epoch {epoch + 1}"
    if run.main:
        say(run.logger, f"epoch {epoch + 1}/{run.session.recipe.training.epochs} " + " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch"))
    state.history.append(row)
    run.outputs.on_epoch_end(row)
    state.counters.epoch, state.counters.step_in_epoch = epoch + 1, 0
    run.save(["last.pt", "best.pt"] if improved else ["last.pt"], description=f"after epoch {epoch + 1}")
    if run.csv_log is not None:
        run.csv_log.write(state.history)
    distributed.barrier()


def stop_after_epoch(run: FitRun, *, epoch: int) -> bool:
    """Early stopping (True), or an orderly stop asked by a signal during the epoch (Interrupted)."""
    training, counters = run.session.recipe.training, run.state.counters
    patience = training.early_stopping.patience
    if patience > 0 and counters.stale_validations >= patience:
        if run.main:
            say(run.logger, f"early stopping: {run.best_metric} did not improve for {patience} validations")
        return True
    last = epoch + 1 == training.epochs
    if not last and distributed.any_rank(run.stop.received is not None, run.session.device):
        by = signal_name(run.stop.received) if run.stop.received else "a signal on another rank"
        raise Interrupted(f"stopped by {by} after epoch {epoch + 1}; {run.kept.tail()}")
    return False
