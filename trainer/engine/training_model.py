"""The model as the fit loop trains it: wrapped for DDP (with find_unused_parameters exactly when
some parameter gets no gradient) and torch.compile when the recipe asks."""

from __future__ import annotations

import logging

import torch
from torch import nn

from trainer.engine import distributed
from trainer.engine.device import autocast_context
from trainer.engine.reporting import say
from trainer.engine.session import Session


def unused_parameters(session: Session, model: nn.Module, amp: torch.dtype | None) -> list[str]:
    """Parameters the losses do not reach, from one forward and backward of two training samples."""
    train_set = session.train_set
    samples = [train_set[(0, i)] for i in range(min(2, len(train_set)))]
    batch = session.prepare_batch(session.task.collate(samples))

    def total_loss(module: nn.Module) -> torch.Tensor:
        with autocast_context(device=session.device, dtype=amp):
            outputs = module(batch["images"])
        outputs = {name: value.float() for name, value in outputs.items()}
        return session.loss_module({**batch, **outputs, "epoch": 0})[0]

    return distributed.parameters_without_grad(model, total_loss)


def training_model(
    session: Session, model: nn.Module, *, amp: torch.dtype | None, logger: logging.Logger
) -> nn.Module:
    """`model` wrapped for DDP (under torch.distributed) and torch.compile (training.compile)."""
    training = session.recipe.training
    if distributed.world_size() > 1:
        unused = unused_parameters(session, model, amp)
        find_unused = distributed.any_rank(bool(unused), session.device)
        if find_unused and distributed.is_main_process():
            say(logger, f"note: {len(unused)} parameters get no gradient from the losses (e.g. {unused[:3]}); "
                        "DDP runs with find_unused_parameters=True")
        model = distributed.wrap_ddp(model, device=session.device, sync_batchnorm=training.sync_batchnorm,
                                     find_unused=find_unused)
    if training.compile:
        model = torch.compile(model)
    return model
