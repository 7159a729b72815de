"""Optimizers by name, with parameter groups that keep weight decay off norms and biases."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer.registry import OPTIMIZERS


@OPTIMIZERS.register("sgd")
def sgd(
    *,
    params: Any,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, foreach=foreach, fused=fused
    )


@OPTIMIZERS.register("adam")
def adam(
    *,
    params: Any,
    lr: float = 1e-3,
    betas: list[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused
    )


@OPTIMIZERS.register("adamw")
def adamw(
    *,
    params: Any,
    lr: float = 1e-3,
    betas: list[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.05,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused
    )


def parameter_groups(*, model: nn.Module, no_decay_norm_bias: bool) -> list[dict[str, Any]]:
    """Two groups when asked: weights of conv/linear layers decay; biases and norm parameters don't."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not no_decay_norm_bias:
        return [{"params": params}]
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            (no_decay if is_norm or name == "bias" or param.ndim <= 1 else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    *, model: nn.Module, options: dict[str, Any], no_decay_norm_bias: bool, device: torch.device
) -> torch.optim.Optimizer:
    options = dict(options)
    factory = OPTIMIZERS.get(options.pop("name"))
    if device.type in ("cuda", "cpu") and options.get("fused") is None and options.get("foreach") is None:
        # one kernel for the whole update on the GPU; on the CPU the fused kernels are also about
        # 4x faster than the per-tensor loop (a fifth of a small model's train step, bench_train.py)
        options["fused"] = True
    groups = [
        group for group in parameter_groups(model=model, no_decay_norm_bias=no_decay_norm_bias) if group["params"]
    ]
    return factory(params=groups, **options)
