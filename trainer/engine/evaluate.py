"""The evaluation loop, shared by `train` (each validation) and `eval`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trainer.engine.device import autocast_context
from trainer.tasks.base import Evaluator

if TYPE_CHECKING:
    from trainer.engine.session import Session


@torch.no_grad()
def evaluate(
    *, model: nn.Module, session: Session, amp_dtype: torch.dtype | None, max_batches: int | None = None
) -> tuple[dict[str, float], Evaluator]:
    """Run the val loader through `model` with the task's evaluator; returns (metrics, evaluator)."""
    evaluator = session.task.build_evaluator(
        class_names=session.class_names, device=session.device, postprocess=session.recipe.model.postprocess
    )
    was_training = model.training
    model.eval()
    for index, batch in enumerate(session.val_loader):
        if max_batches is not None and index >= max_batches:
            break
        batch = session.prepare_batch(batch)
        with autocast_context(device=session.device, dtype=amp_dtype):
            outputs = model(batch["images"])
        evaluator.update(outputs={k: v.float() for k, v in outputs.items()}, batch=batch)
    model.train(was_training)
    return evaluator.compute(), evaluator
