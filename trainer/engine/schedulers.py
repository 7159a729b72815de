"""Learning-rate schedules stepped once per optimizer step, with an optional linear warmup.

All are torch.optim.lr_scheduler classes; epochs in the recipe are converted to steps here.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch.optim import lr_scheduler

from trainer.constraints import AtLeastOne, NonNegative, Positive, Probability, Range
from trainer.registry import SCHEDULERS

# option constraints, declared once for every schedule
WarmupEpochs = Annotated[float, NonNegative]
StartFactor = Annotated[float, Range(gt=0, le=1)]
Gamma = Annotated[float, Positive]
EpochCount = Annotated[int, AtLeastOne]


def _with_warmup(
    *, optimizer: torch.optim.Optimizer, main: lr_scheduler.LRScheduler | None, warmup_steps: int,
    warmup_start_factor: float,
) -> lr_scheduler.LRScheduler:
    if warmup_steps <= 0:
        return main if main is not None else lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    warmup = lr_scheduler.LinearLR(
        optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_steps
    )
    if main is None:
        return warmup
    return lr_scheduler.SequentialLR(optimizer, schedulers=[warmup, main], milestones=[warmup_steps])


def _warmup_steps(warmup_epochs: float, steps_per_epoch: int) -> int:
    return int(round(warmup_epochs * steps_per_epoch))


class _EpochCosineFactor:
    """The cosine factor of the epoch a step falls in: constant within an epoch, from 1 at the first
    epoch to just above `min_ratio` at the last (it reaches min_ratio only after the schedule)."""

    def __init__(self, *, steps_per_epoch: int, total_steps: int, min_ratio: float) -> None:
        self.steps_per_epoch, self.total_steps, self.min_ratio = steps_per_epoch, total_steps, min_ratio

    def __call__(self, step: int) -> float:
        start = min(step // self.steps_per_epoch * self.steps_per_epoch, self.total_steps)
        return self.min_ratio + (1 - self.min_ratio) * (1 + math.cos(math.pi * start / self.total_steps)) / 2


@SCHEDULERS.register("cosine")
def cosine(
    *, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: WarmupEpochs = 0.0,
    warmup_start_factor: StartFactor = 0.1, min_lr_ratio: Annotated[float, Probability] = 0.0, by_epoch: bool = False,
) -> lr_scheduler.LRScheduler:
    """Cosine from the lr to lr x min_lr_ratio, updated every optimizer step, or with `by_epoch` once per
    epoch (as NetsPresso Trainer, torchvision's and timm's recipes do: a recipe ported from them)."""
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch)
    total = max(1, epochs * steps_per_epoch - warmup)
    if by_epoch:
        factor = _EpochCosineFactor(steps_per_epoch=steps_per_epoch, total_steps=total, min_ratio=min_lr_ratio)
        main = lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
    else:
        base_lr = optimizer.param_groups[0]["lr"]
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=base_lr * min_lr_ratio)
    return _with_warmup(optimizer=optimizer, main=main, warmup_steps=warmup, warmup_start_factor=warmup_start_factor)


@SCHEDULERS.register("step")
def step(
    *, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, step_epochs: EpochCount = 30,
    gamma: Gamma = 0.1, warmup_epochs: WarmupEpochs = 0.0, warmup_start_factor: StartFactor = 0.1,
) -> lr_scheduler.LRScheduler:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch)
    main = lr_scheduler.StepLR(optimizer, step_size=max(1, step_epochs * steps_per_epoch), gamma=gamma)
    return _with_warmup(optimizer=optimizer, main=main, warmup_steps=warmup, warmup_start_factor=warmup_start_factor)


@SCHEDULERS.register("multistep")
def multistep(
    *, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, milestones: list[EpochCount] = (),
    gamma: Gamma = 0.1, warmup_epochs: WarmupEpochs = 0.0, warmup_start_factor: StartFactor = 0.1,
) -> lr_scheduler.LRScheduler:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch)
    steps = [max(1, epoch * steps_per_epoch - warmup) for epoch in milestones]
    main = lr_scheduler.MultiStepLR(optimizer, milestones=steps, gamma=gamma)
    return _with_warmup(optimizer=optimizer, main=main, warmup_steps=warmup, warmup_start_factor=warmup_start_factor)


@SCHEDULERS.register("poly")
def poly(
    *, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, power: Annotated[float, Positive] = 0.9,
    warmup_epochs: WarmupEpochs = 0.0, warmup_start_factor: StartFactor = 0.1,
) -> lr_scheduler.LRScheduler:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch)
    total = max(1, epochs * steps_per_epoch - warmup)
    main = lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=power)
    return _with_warmup(optimizer=optimizer, main=main, warmup_steps=warmup, warmup_start_factor=warmup_start_factor)


@SCHEDULERS.register("constant")
def constant(
    *, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: WarmupEpochs = 0.0,
    warmup_start_factor: StartFactor = 0.1,
) -> lr_scheduler.LRScheduler:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch)
    return _with_warmup(optimizer=optimizer, main=None, warmup_steps=warmup, warmup_start_factor=warmup_start_factor)
