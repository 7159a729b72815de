"""One training step: autocast forward, loss, backward (scaled for fp16), clip, step, EMA."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainer.engine.device import autocast_context
from trainer.engine.distributed import unwrap


@dataclass
class StepState:
    model: nn.Module
    loss_module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: Any
    device: torch.device
    amp_dtype: torch.dtype | None
    grad_clip: float | None
    accumulation: int


def train_step(
    state: StepState, batch: dict[str, Any], *, epoch: int, micro_step: int, last: bool = False
) -> dict[str, torch.Tensor]:
    """Forward and backward one micro-batch; step the optimizer every `accumulation` micro-batches
    and on the epoch's `last` one (a short final group), so no gradient leaks into the next epoch.
    DDP skips its gradient all-reduce (no_sync) on the micro-batches that do not step."""
    stepping = (micro_step + 1) % state.accumulation == 0 or last
    sync = nullcontext() if stepping or not hasattr(state.model, "no_sync") else state.model.no_sync()
    with sync:
        with autocast_context(device=state.device, dtype=state.amp_dtype):
            outputs = state.model(batch["images"])
        outputs = {name: value.float() for name, value in outputs.items()}
        total, parts = state.loss_module({**batch, **outputs, "epoch": epoch})
        state.scaler.scale(total / state.accumulation).backward()
    if stepping:
        if state.grad_clip is not None:
            state.scaler.unscale_(state.optimizer)
            nn.utils.clip_grad_norm_(state.model.parameters(), state.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.optimizer.zero_grad(set_to_none=True)
        state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(unwrap(state.model))
    parts["total"] = total.detach()
    return parts
