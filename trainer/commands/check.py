"""`trainer check`: validate, build everything a run builds (data, model, losses, optimizer, scheduler,
EMA), load one batch of each split, run one training step (forward, backward, optimizer and scheduler
step) and one evaluation batch; print a summary; write nothing."""

from __future__ import annotations

import torch
from rich.table import Table

from trainer.engine.device import autocast_context, resolve_device, seed_everything
from trainer.engine.evaluate import evaluate
from trainer.engine.reporting import console
from trainer.engine.session import Session, build_session
from trainer.engine.train_state import TrainState, build_train_state
from trainer.recipe import load_recipe


def one_training_step(session: Session, state: TrainState) -> tuple[dict, dict, dict, torch.Tensor, list[str]]:
    """One batch of the train split through forward, loss, backward, optimizer and scheduler step, as a
    run does it; returns (batch, outputs, loss parts, total, names of trainable parameters without a gradient)."""
    batch = session.prepare_batch(next(iter(session.train_loader)))
    if session.batch_mixing is not None:
        batch["images"], batch["labels"] = session.batch_mixing(batch["images"], batch["labels"])
    model = state.model.train()
    with autocast_context(device=session.device, dtype=state.amp_dtype):
        outputs = model(batch["images"])
    outputs = {name: value.float() for name, value in outputs.items()}
    total, parts = session.loss_module({**batch, **outputs, "epoch": 0})
    state.scaler.scale(total).backward()
    without_grad = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    return batch, outputs, parts, total.detach(), without_grad


def summary_table(*, title: str, session: Session, state: TrainState, batch: dict, outputs: dict,
                  values: dict[str, float], total: float, metrics: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("task", session.recipe.task)
    table.add_row("classes", str(len(session.class_names)))
    table.add_row("train / val images", f"{len(session.train_set)} / {len(session.val_set)}")
    table.add_row("parameters", f"{sum(p.numel() for p in session.model.parameters()):,}")
    learning_rates = sorted({f"{group['lr']:.3g}" for group in state.optimizer.param_groups})
    table.add_row("optimizer", f"{type(state.optimizer).__name__}, lr after one step {' / '.join(learning_rates)}")
    table.add_row("scheduler", type(state.scheduler).__name__)
    table.add_row("input batch", str(tuple(batch["images"].shape)))
    for name, value in outputs.items():
        table.add_row(f"output {name}", str(tuple(value.shape)))
    for name, value in values.items():
        table.add_row(f"loss/{name}", f"{value:.4f}")
    table.add_row("loss/total", f"{total:.4f}")
    for name, value in metrics.items():
        table.add_row(f"val/{name} (one batch)", f"{value:.4f}")
    return table


def check_command(*, recipes: list[str], overrides: list[str], device: str | None = None) -> dict[str, float]:
    """Build and exercise everything; returns the loss parts of the training step."""
    loaded = load_recipe(recipes, overrides)
    recipe = loaded.recipe
    torch_device = resolve_device(device or recipe.environment.device)
    seed_everything(recipe.environment.seed)
    session = build_session(loaded, device=torch_device, for_training=True)
    state = build_train_state(session)
    batch, outputs, parts, total, without_grad = one_training_step(session, state)
    metrics, _ = evaluate(model=state.model, session=session, amp_dtype=state.amp_dtype, max_batches=1)
    values = {name: float(value.detach()) for name, value in parts.items()}
    console.print(summary_table(title=f"check: {', '.join(recipes)}", session=session, state=state, batch=batch,
                                outputs=outputs, values=values, total=float(total), metrics=metrics))
    if without_grad:
        console.print(f"note: {len(without_grad)} parameters got no gradient (e.g. {without_grad[:3]})")
    console.print("recipe OK: built everything, ran one training step (forward, backward, optimizer and "
                  "scheduler) and one validation batch")
    return values
