"""Exponential moving average of the weights through torch.optim.swa_utils.AveragedModel."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_multi_avg_fn(*, decay: float, warmup_steps: int):
    """EMA update for AveragedModel; the decay ramps up as decay * (1 - exp(-n / warmup)) (YOLOX)."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], current_params: list[torch.Tensor], num_averaged) -> None:
        steps = int(num_averaged) + 1
        effective = decay * (1.0 - math.exp(-steps / warmup_steps)) if warmup_steps > 0 else decay
        floats = [(e, c) for e, c in zip(ema_params, current_params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [c for _, c in floats], 1.0 - effective)
        for e, c in zip(ema_params, current_params):
            if not e.is_floating_point():
                e.copy_(c)

    return update


def build_ema(*, model: nn.Module, decay: float, warmup_steps: int) -> AveragedModel:
    return AveragedModel(
        model, multi_avg_fn=ema_multi_avg_fn(decay=decay, warmup_steps=warmup_steps), use_buffers=True
    )
