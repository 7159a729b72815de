"""Optimizers by name, with parameter groups that keep weight decay off norms and biases.

``auto`` (the schema default) picks the optimizer and its learning rate from the task, the model,
the batch size and the number of optimizer steps, as Ultralytics' ``optimizer=auto`` does: AdamW
for short schedules (up to ``LONG_SCHEDULE_STEPS``), where it learns from scratch much faster
than SGD, and SGD with Nesterov momentum and a batch-scaled learning rate for long ones. The
AdamW learning rates are the ones measured to train each kind of model from scratch on the
built-in shapes (docs/benchmarks.md, "Defaults that train").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import nn

from trainer.constraints import Fraction, NonNegative, Positive, Probability
from trainer.engine.reporting import say
from trainer.registry import OPTIMIZERS
from trainer.specs import AutoOptimizerDefaults

LONG_SCHEDULE_STEPS = 10_000  # Ultralytics' threshold between AdamW (short) and SGD (long)


@dataclass(frozen=True)
class AutoChoice:
    """What ``auto`` picked, and why (printed at the start of a run)."""

    name: str
    lr: float
    weight_decay: float
    reason: str

    def options(self) -> dict[str, Any]:
        extra = {"momentum": 0.9, "nesterov": True} if self.name == "sgd" else {}
        return {"lr": self.lr, "weight_decay": self.weight_decay, **extra}

    def summary(self) -> str:
        extra = ", momentum 0.9, nesterov" if self.name == "sgd" else ""
        return (f"optimizer auto: {self.name} lr {self.lr:.3g}, weight decay {self.weight_decay:g}{extra} "
                f"({self.reason})")


def auto_defaults(*, task: str, model: nn.Module) -> AutoOptimizerDefaults:
    """The model's own `auto_optimizer` (a head that declares one), else the task's."""
    from trainer.tasks import task_class

    for module in model.modules():
        declared = getattr(type(module), "auto_optimizer", None)
        if isinstance(declared, AutoOptimizerDefaults):
            return declared
    return task_class(task).auto_optimizer


def choose_optimizer(*, task: str, model: nn.Module, total_steps: int, batch_size: int) -> AutoChoice:
    """AdamW at the measured lr for short schedules, SGD at a batch-scaled lr for long ones."""
    defaults = auto_defaults(task=task, model=model)
    if total_steps <= LONG_SCHEDULE_STEPS:
        lr, weight_decay = defaults.adamw
        return AutoChoice("adamw", lr, weight_decay,
                          f"{defaults.label}, {total_steps} steps <= {LONG_SCHEDULE_STEPS}")
    per_image, weight_decay = defaults.sgd_per_image
    return AutoChoice("sgd", per_image * batch_size, weight_decay,
                      f"{defaults.label}, {total_steps} steps > {LONG_SCHEDULE_STEPS}, lr scaled to batch {batch_size}")


@OPTIMIZERS.register("sgd")
def sgd(
    *,
    params: Any,
    lr: Annotated[float, Positive] = 0.01,
    momentum: Annotated[float, Probability] = 0.9,
    weight_decay: Annotated[float, NonNegative] = 5e-4,
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
    lr: Annotated[float, Positive] = 1e-3,
    betas: list[Annotated[float, Fraction]] = (0.9, 0.999),
    eps: Annotated[float, Positive] = 1e-8,
    weight_decay: Annotated[float, NonNegative] = 0.0,
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
    lr: Annotated[float, Positive] = 1e-3,
    betas: list[Annotated[float, Fraction]] = (0.9, 0.999),
    eps: Annotated[float, Positive] = 1e-8,
    weight_decay: Annotated[float, NonNegative] = 0.05,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused
    )


@OPTIMIZERS.register("auto")
def auto(
    *,
    params: Any,
    model: nn.Module,
    task: str,
    total_steps: int,
    batch_size: int,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """AdamW (short schedules) or SGD (long ones) with the lr for the task, model, batch and steps; prints it."""
    choice = choose_optimizer(task=task, model=model, total_steps=total_steps, batch_size=batch_size)
    say(logging.getLogger("trainer.run"), choice.summary())
    factory = OPTIMIZERS.get(choice.name)
    return factory(params=params, foreach=foreach, fused=fused, **choice.options())


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
    *, model: nn.Module, options: dict[str, Any], no_decay_norm_bias: bool, device: torch.device,
    task: str = "classification", total_steps: int = 1, batch_size: int = 1,
) -> torch.optim.Optimizer:
    """The recipe's optimizer over `model`'s parameter groups; ``task``, ``total_steps`` (optimizer
    steps of the whole run) and ``batch_size`` feed ``auto``."""
    options = dict(options)
    name = options.pop("name")
    factory = OPTIMIZERS.get(name)
    if name == "auto":
        options.update(model=model, task=task, total_steps=total_steps, batch_size=batch_size)
    if device.type in ("cuda", "cpu") and options.get("fused") is None and options.get("foreach") is None:
        # one kernel for the whole update on the GPU; on the CPU the fused kernels are also about
        # 4x faster than the per-tensor loop (a fifth of a small model's train step, bench_train.py)
        options["fused"] = True
    groups = [
        group for group in parameter_groups(model=model, no_decay_norm_bias=no_decay_norm_bias) if group["params"]
    ]
    return factory(params=groups, **options)
