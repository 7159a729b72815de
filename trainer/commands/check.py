"""`trainer check`: validate, build everything, run one batch forward and backward; write nothing."""

from __future__ import annotations

import torch
from rich.table import Table

from trainer.engine.device import autocast_dtype, resolve_device, seed_everything
from trainer.engine.reporting import console
from trainer.engine.session import build_session
from trainer.recipe import load_recipe


def check_command(*, recipes: list[str], overrides: list[str], device: str | None = None) -> dict[str, float]:
    loaded = load_recipe(recipes, overrides)
    recipe = loaded.recipe
    torch_device = resolve_device(device or recipe.environment.device)
    seed_everything(recipe.environment.seed)
    session = build_session(loaded, device=torch_device, for_training=True)
    model = session.model.train()
    batch = session.prepare_batch(next(iter(session.train_loader)))
    amp = autocast_dtype(amp=recipe.training.amp, device=torch_device)
    with torch.autocast(device_type=torch_device.type, dtype=amp or torch.float32, enabled=amp is not None):
        outputs = model(batch["images"])
    outputs = {name: value.float() for name, value in outputs.items()}
    total, parts = session.loss_module({**batch, **outputs, "epoch": 0})
    total.backward()
    without_grad = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    parameters = sum(p.numel() for p in model.parameters())
    table = Table(title=f"check: {', '.join(recipes)}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("task", recipe.task)
    table.add_row("classes", str(len(session.class_names)))
    table.add_row("train / val images", f"{len(session.train_set)} / {len(session.val_set)}")
    table.add_row("parameters", f"{parameters:,}")
    table.add_row("input batch", str(tuple(batch["images"].shape)))
    for name, value in outputs.items():
        table.add_row(f"output {name}", str(tuple(value.shape)))
    values = {name: float(value.detach()) for name, value in parts.items()}
    for name, value in values.items():
        table.add_row(f"loss/{name}", f"{value:.4f}")
    table.add_row("loss/total", f"{float(total.detach()):.4f}")
    console.print(table)
    if without_grad:
        console.print(f"note: {len(without_grad)} parameters got no gradient (e.g. {without_grad[:3]})")
    console.print("recipe OK: built everything and ran one batch forward and backward")
    return values
