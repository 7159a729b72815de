"""`--resume`: read a run's last.pt, check it against the recipe's model and optimizer, restore it.

Everything here runs before the run directory is touched: a checkpoint that does not fit is a
CheckpointError (exit code 2) naming the file and the first mismatches, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainer.engine.checkpoint import CheckpointError, load_checkpoint
from trainer.engine.session import Session
from trainer.engine.train_state import FORMAT, TrainState, replayed_scheduler

SHOWN = 3  # mismatching keys named in a message
TRAINING_KEYS = ("model", "optimizer", "scheduler", "scaler", "rng")
FLAT_COUNTERS = ("epoch", "step_in_epoch", "global_step", "best_value", "stale_validations")


def _examples(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > SHOWN else shown


def _upgraded(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A format-1 checkpoint (counters at the top level) in today's layout."""
    counters = {name: checkpoint[name] for name in FLAT_COUNTERS if name in checkpoint}
    counters.setdefault("stale_validations", 0)
    return {**checkpoint, "format": FORMAT, "counters": counters}


def read_training_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint a training run wrote (last.pt); a bare state dict or a foreign file is a
    CheckpointError naming the file and the keys it holds."""
    checkpoint = load_checkpoint(path)
    if checkpoint.get("format") is None and {"epoch", "step_in_epoch", "global_step"} <= set(checkpoint):
        checkpoint = _upgraded(checkpoint)
    missing = [key for key in (*TRAINING_KEYS, "counters") if key not in checkpoint]
    if missing or checkpoint.get("format") != FORMAT:
        held = _examples([str(key) for key in checkpoint]) or "nothing"
        raise CheckpointError(
            f"{path} is not a training checkpoint written by trainer (format {FORMAT}; it holds: {held}); "
            "--resume needs the checkpoints/last.pt of a run"
        )
    return checkpoint


def _state_mismatches(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    missing = [key for key in expected if key not in got]
    unexpected = [key for key in got if key not in expected]
    shapes = [
        f"{key} {tuple(got[key].shape)} in the checkpoint, {tuple(expected[key].shape)} in the recipe's model"
        for key in expected
        if key in got and hasattr(got[key], "shape") and tuple(got[key].shape) != tuple(expected[key].shape)
    ]
    found = []
    if missing:
        found.append(f"missing {_examples(missing)}")
    if unexpected:
        found.append(f"unexpected {_examples(unexpected)}")
    if shapes:
        found.append(f"other shapes: {_examples(shapes)}")
    return found


def _optimizer_mismatch(state: TrainState, saved: dict[str, Any]) -> str | None:
    here = [len(group["params"]) for group in state.optimizer.param_groups]
    there = [len(group.get("params", ())) for group in saved.get("param_groups", ())]
    if here == there:
        return None
    return f"the optimizer's parameter groups hold {there} parameters, the recipe's {here}"


def check_fits(state: TrainState, checkpoint: dict[str, Any], *, path: Path, task: str) -> None:
    """The checkpoint's model, EMA and optimizer fit the recipe's (names and shapes)."""
    problems = [f"model: {'; '.join(found)}"
                for found in [_state_mismatches(state.model.state_dict(), checkpoint["model"])] if found]
    if state.ema is not None and checkpoint.get("ema") is not None:
        found = _state_mismatches(state.ema.state_dict(), checkpoint["ema"])
        problems += [f"ema: {'; '.join(found)}"] if found else []
    if not problems:
        optimizer = _optimizer_mismatch(state, checkpoint["optimizer"])
        problems += [optimizer] if optimizer else []
    if checkpoint.get("task", task) != task:
        problems.insert(0, f"it was trained for {checkpoint['task']}, the recipe is {task}")
    if problems:
        raise CheckpointError(f"{path} does not fit the recipe: " + "; ".join(problems))


def _planned_epochs(checkpoint: dict[str, Any]) -> int | None:
    try:
        return int(yaml.safe_load(checkpoint["recipe"])["training"]["epochs"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def restore(state: TrainState, checkpoint: dict[str, Any], *, session: Session, path: Path) -> str | None:
    """Check and load `checkpoint` into `state`; a note to print when the schedule was stretched."""
    check_fits(state, checkpoint, path=path, task=session.recipe.task)
    state.load_state_dict(checkpoint)
    planned, epochs = _planned_epochs(checkpoint), session.recipe.training.epochs
    if planned is None or planned == epochs:
        return None
    state.scheduler = replayed_scheduler(session, state.optimizer, state.counters.global_step)
    return f"training.epochs changed from {planned} to {epochs}: the learning-rate schedule now spans {epochs} epochs"
