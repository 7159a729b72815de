"""Everything a training run changes and a resumed run restores: model, EMA, optimizer, scheduler,
gradient scaler, counters, metric history and the random number generators."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from trainer.engine.checkpoint import restore_rng_state, rng_state
from trainer.engine.device import autocast_dtype
from trainer.engine.ema import build_ema
from trainer.engine.optimizers import build_optimizer
from trainer.engine.session import Session
from trainer.registry import SCHEDULERS

FORMAT = 2  # the checkpoint layout of TrainState.state_dict(); 1: the flat dict written before it


@dataclass
class Counters:
    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0  # micro-batches done in epoch `epoch` (a run stopped mid-epoch), else 0
    global_step: int = 0  # optimizer steps
    best_value: float | None = None
    stale_validations: int = 0  # validations since the best metric last improved


@dataclass
class TrainState:
    model: nn.Module  # the bare model: not wrapped for DDP or torch.compile
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    counters: Counters = field(default_factory=Counters)
    history: list[dict[str, Any]] = field(default_factory=list)  # the rows of metrics.csv

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "counters": asdict(self.counters),
            "history": [dict(row) for row in self.history], "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` (checked beforehand by `resume.check_fits`), RNGs included."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.counters = Counters(**state["counters"])
        self.history = [dict(row) for row in state.get("history", [])]
        restore_rng_state(state["rng"])


def steps_per_epoch(session: Session) -> int:
    """Micro-batches per epoch: the loader's length, capped by training.max_steps_per_epoch."""
    steps = len(session.train_loader)
    cap = session.recipe.training.max_steps_per_epoch
    return min(steps, cap) if cap is not None else steps


def build_scheduler(
    session: Session, optimizer: torch.optim.Optimizer, *, micro_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's schedule over `micro_steps` micro-batches per epoch (optimizer steps: grouped
    by training.grad_accum_steps, the last group may be short)."""
    options = dict(session.recipe.training.scheduler)
    factory = SCHEDULERS.get(options.pop("name"))
    if "warmup_epochs" not in options and "warmup_epochs" in inspect.signature(factory).parameters:
        options["warmup_epochs"] = session.task.default_warmup_epochs  # the recipe leaves it to the task
    steps = max(1, -(-micro_steps // session.recipe.training.grad_accum_steps))
    return factory(optimizer=optimizer, steps_per_epoch=steps, epochs=session.recipe.training.epochs, **options)


def replayed_scheduler(session: Session, optimizer: torch.optim.Optimizer, steps_done: int):
    """The recipe's schedule (for its, possibly extended, training.epochs) advanced by `steps_done`
    optimizer steps: a resumed run asked to train longer continues on the longer schedule."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"]
    scheduler = build_scheduler(session, optimizer, micro_steps=steps_per_epoch(session))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps_done):
            scheduler.step()
    return scheduler


def build_train_state(session: Session) -> TrainState:
    """A fresh state for the session's model (moved to channels_last first when the recipe asks)."""
    training = session.recipe.training
    model = session.model
    if training.channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps = max(1, -(-steps_per_epoch(session) // training.grad_accum_steps))  # optimizer steps per epoch
    optimizer = build_optimizer(model=model, options=training.optimizer,
                                no_decay_norm_bias=training.no_decay_norm_bias, device=session.device,
                                task=session.recipe.task, total_steps=steps * training.epochs,
                                batch_size=training.batch_size)
    amp = autocast_dtype(amp=training.amp, device=session.device)
    ema = (build_ema(model=model, decay=training.ema.decay, warmup_steps=training.ema.warmup_steps)
           if training.ema.enabled else None)
    scheduler = build_scheduler(session, optimizer, micro_steps=steps_per_epoch(session))
    return TrainState(
        model=model, ema=ema, optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler(session.device.type, enabled=amp == torch.float16), amp_dtype=amp,
    )
