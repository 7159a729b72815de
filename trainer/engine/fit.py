"""The fit loop, the same for every task: train epochs, validate, checkpoint, resume."""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.engine import distributed
from trainer.engine.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from trainer.engine.device import autocast_dtype, epoch_seed, seed_everything
from trainer.engine.ema import build_ema
from trainer.engine.evaluate import evaluate
from trainer.engine.optimizers import build_optimizer
from trainer.engine.reporting import EpochProgress, MetricsCsv, console, format_parts, metrics_table, say
from trainer.engine.session import Session
from trainer.engine.train_step import StepState, train_step
from trainer.recipe import recipe_to_yaml
from trainer.registry import SCHEDULERS


class NonFiniteLossError(Exception):
    pass


class Interrupted(Exception):
    pass


@dataclass
class FitResult:
    run_dir: Path
    best_metric: str
    best_value: float | None
    last_metrics: dict[str, float] = field(default_factory=dict)
    epochs_done: int = 0


class StopSignal:
    """SIGINT/SIGTERM ask the loop to finish the current step, save last.pt and exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignal":
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is not None:  # a second signal stops at once
            raise KeyboardInterrupt
        self.received = number

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def _steps_per_epoch(session: Session) -> int:
    steps = len(session.train_loader)
    cap = session.recipe.training.max_steps_per_epoch
    return min(steps, cap) if cap is not None else steps


def _build_scheduler(session: Session, optimizer: torch.optim.Optimizer, micro_steps: int):
    options = dict(session.recipe.training.scheduler)
    factory = SCHEDULERS.get(options.pop("name"))
    steps = max(1, micro_steps // session.recipe.training.grad_accum_steps)
    return factory(optimizer=optimizer, steps_per_epoch=steps, epochs=session.recipe.training.epochs, **options)


def _better(value: float, best: float | None, min_delta: float) -> bool:
    return best is None or value > best + min_delta


def fit(session: Session, *, run_dir: Path, resume_from: Path | None = None, logger) -> FitResult:
    recipe = session.recipe
    training = recipe.training
    main = distributed.is_main_process()
    device = session.device
    model = session.model
    if training.channels_last:
        model = model.to(memory_format=torch.channels_last)
    raw_model = model
    optimizer = build_optimizer(
        model=raw_model, options=training.optimizer, no_decay_norm_bias=training.no_decay_norm_bias, device=device
    )
    micro_steps = _steps_per_epoch(session)
    scheduler = _build_scheduler(session, optimizer, micro_steps)
    amp = autocast_dtype(amp=training.amp, device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    ema = build_ema(model=raw_model, decay=training.ema.decay, warmup_steps=training.ema.warmup_steps) if training.ema.enabled else None
    if distributed.world_size() > 1:
        model = distributed.wrap_ddp(model, device=device, sync_batchnorm=training.sync_batchnorm)
    if training.compile:
        model = torch.compile(model)
    best_metric = training.best_metric or session.task.default_best_metric
    start_epoch, skip_steps, global_step = 0, 0, 0
    best_value: float | None = None
    stale_validations = 0
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from, map_location=device)
        raw_model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        if ema is not None and checkpoint.get("ema") is not None:
            ema.load_state_dict(checkpoint["ema"])
        start_epoch, skip_steps = checkpoint["epoch"], checkpoint["step_in_epoch"]
        global_step = checkpoint["global_step"]
        best_value = checkpoint.get("best_value")
        stale_validations = checkpoint.get("stale_validations", 0)
        restore_rng_state(checkpoint["rng"])
        say(logger, f"resumed from {resume_from}: epoch {start_epoch + 1}, step {skip_steps}")

    history: list[dict[str, Any]] = checkpoint.get("history", []) if resume_from is not None else []
    csv_log = MetricsCsv(run_dir / "metrics.csv", rows=history) if main else None
    state = StepState(
        model=model, loss_module=session.loss_module, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
        ema=ema, device=device, amp_dtype=amp, grad_clip=training.grad_clip, accumulation=training.grad_accum_steps,
    )

    def checkpoint_state(epoch: int, step_in_epoch: int) -> dict[str, Any]:
        return {
            "model": raw_model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
            "best_metric": best_metric, "best_value": best_value, "stale_validations": stale_validations,
            "rng": rng_state(), "recipe": recipe_to_yaml(recipe), "task": recipe.task,
            "class_names": session.class_names, "history": list(history),
        }

    result = FitResult(run_dir=run_dir, best_metric=best_metric, best_value=best_value)
    log_every = recipe.logging.log_every
    with StopSignal() as stop:
        for epoch in range(start_epoch, training.epochs):
            epoch_start = time.perf_counter()
            if skip_steps == 0:
                seed_everything(epoch_seed(seed=recipe.environment.seed, epoch=epoch, rank=distributed.rank()))
            session.train_loader.sampler.set_epoch(epoch, skip_batches=skip_steps, batch_size=training.batch_size)
            model.train()
            progress = EpochProgress(
                mode=recipe.logging.progress if main else "none", total=micro_steps, epoch=epoch,
                epochs=training.epochs, logger=logger,
            )
            sums: dict[str, torch.Tensor] = {}
            counted = 0
            step = skip_steps
            try:
                for batch in session.train_loader:
                    if step >= micro_steps:
                        break
                    batch = session.prepare_batch(batch)
                    if session.batch_mixing is not None:
                        batch["images"], batch["labels"] = session.batch_mixing(batch["images"], batch["labels"])
                    parts = train_step(state, batch, epoch=epoch, micro_step=step)
                    for name, value in parts.items():
                        sums[name] = sums[name] + value if name in sums else value.clone()
                    counted += 1
                    step += 1
                    if step % training.grad_accum_steps == 0:
                        global_step += 1
                    if step % log_every == 0 or step == micro_steps:
                        means = _read_means(sums, counted)
                        if not all(math.isfinite(v) for v in means.values()):
                            raise NonFiniteLossError(
                                f"non-finite loss at epoch {epoch + 1}, step {step}: {format_parts(means)}"
                            )
                        progress.update(step=step, parts=means, lr=optimizer.param_groups[0]["lr"],
                                        images=counted * training.batch_size)
                    if stop.received is not None:
                        if main:
                            save_checkpoint(checkpoint_state(epoch, step), run_dir / "checkpoints" / "last.pt")
                        raise Interrupted(
                            f"stopped by signal {stop.received} at epoch {epoch + 1}, step {step}; "
                            f"last.pt saved; resume with: trainer train --resume {run_dir}"
                        )
            finally:
                progress.close()
            skip_steps = 0
            means = _read_means(sums, counted)
            row: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
            row.update({f"train/{name}": value for name, value in means.items()})
            validate = (epoch + 1) % training.val_every == 0 or epoch + 1 == training.epochs
            improved = False
            if validate:
                eval_model = ema.module if ema is not None else raw_model
                metrics, _ = evaluate(model=eval_model, session=session, amp_dtype=amp)
                result.last_metrics = metrics
                row.update({f"val/{name}": value for name, value in metrics.items()})
                value = metrics[best_metric]
                improved = _better(value, best_value, training.early_stopping.min_delta)
                if improved:
                    best_value = value
                    stale_validations = 0
                else:
                    stale_validations += 1
            row["seconds"] = round(time.perf_counter() - epoch_start, 3)
            if main:
                say(logger, f"epoch {epoch + 1}/{training.epochs} " + " ".join(
                    f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch"))
            history.append(row)
            if main:
                state_dict = checkpoint_state(epoch + 1, 0)
                save_checkpoint(state_dict, run_dir / "checkpoints" / "last.pt")
                if improved:
                    save_checkpoint(state_dict, run_dir / "checkpoints" / "best.pt")
                csv_log.write(history)
            result.epochs_done = epoch + 1
            distributed.barrier()
            patience = training.early_stopping.patience
            if patience > 0 and stale_validations >= patience:
                say(logger, f"early stopping: {best_metric} did not improve for {patience} validations")
                break
    result.best_value = best_value
    if main and result.last_metrics:
        console.print(metrics_table(result.last_metrics, title=f"validation after epoch {result.epochs_done}"))
    return result


def _read_means(sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
    """One host sync for all loss parts."""
    if not sums:
        return {}
    names = list(sums)
    values = (torch.stack([sums[name].float() for name in names]) / max(count, 1)).tolist()
    return dict(zip(names, values))
