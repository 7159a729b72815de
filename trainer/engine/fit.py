"""The fit loop, the same for every task: train epochs, validate, checkpoint, resume."""

from __future__ import annotations

import math
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from trainer.engine import distributed
from trainer.engine.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from trainer.engine.device import autocast_dtype, epoch_seed, seed_everything
from trainer.engine.ema import build_ema
from trainer.engine.evaluate import evaluate
from trainer.engine.optimizers import build_optimizer
from trainer.engine.reporting import EpochProgress, MetricsCsv, console, format_parts, metrics_table, say
from trainer.engine.run_outputs import RunOutputs
from trainer.engine.session import Session
from trainer.engine.train_step import StepState, train_step
from trainer.recipe import recipe_to_yaml
from trainer.registry import SCHEDULERS


class NonFiniteLossError(Exception):
    pass


class Interrupted(Exception):
    pass


class DataFailure(Exception):
    """Bad data met during the run (e.g. a corrupt image in epoch 3): exit code 1, checkpoint kept."""


@dataclass
class FitResult:
    run_dir: Path
    best_metric: str
    best_value: float | None
    last_metrics: dict[str, float] = field(default_factory=dict)
    epochs_done: int = 0


class StopSignal:
    """SIGINT/SIGTERM ask the loop to finish the current step, save last.pt and exit.

    A second signal stops at once, unless it comes within `repeat_window` seconds of the first: a
    launcher (torchrun) forwards the SIGINT that the terminal already sent to every process, and
    that copy must not cancel the orderly stop.
    """

    repeat_window = 2.0

    def __init__(self) -> None:
        self.received: int | None = None
        self.received_at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignal":
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is not None:  # a second signal stops at once
            if time.monotonic() - self.received_at < self.repeat_window:
                return
            raise KeyboardInterrupt
        self.received = number
        self.received_at = time.monotonic()

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
    steps = max(1, -(-micro_steps // session.recipe.training.grad_accum_steps))  # the last group may be short
    return factory(optimizer=optimizer, steps_per_epoch=steps, epochs=session.recipe.training.epochs, **options)


def _replayed_scheduler(session: Session, optimizer: torch.optim.Optimizer, micro_steps: int, steps_done: int):
    """The recipe's schedule (for its, possibly extended, training.epochs) advanced by `steps_done`
    optimizer steps: a resumed run asked to train longer continues on the longer schedule."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"]
    scheduler = _build_scheduler(session, optimizer, micro_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps_done):
            scheduler.step()
    return scheduler


def _unused_parameters(session: Session, model: torch.nn.Module, amp: torch.dtype | None) -> list[str]:
    """Parameters the losses do not reach, from one forward and backward of two training samples
    (DDP needs find_unused_parameters exactly then)."""
    from trainer.engine.device import autocast_context

    train_set = session.train_set
    batch = session.prepare_batch(session.task.collate([train_set[(0, i)] for i in range(min(2, len(train_set)))]))

    def total_loss(module: torch.nn.Module) -> torch.Tensor:
        with autocast_context(device=session.device, dtype=amp):
            outputs = module(batch["images"])
        outputs = {name: value.float() for name, value in outputs.items()}
        return session.loss_module({**batch, **outputs, "epoch": 0})[0]

    return distributed.parameters_without_grad(model, total_loss)


def _weights_finite(model: torch.nn.Module) -> bool:
    """One host sync: every parameter finite (checked before a checkpoint is written)."""
    flags = [p.detach().isfinite().all() for p in model.parameters() if p.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def _planned_epochs(checkpoint: dict[str, Any]) -> int | None:
    try:
        return int(yaml.safe_load(checkpoint["recipe"])["training"]["epochs"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


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
    ema = (
        build_ema(model=raw_model, decay=training.ema.decay, warmup_steps=training.ema.warmup_steps)
        if training.ema.enabled
        else None
    )
    if distributed.world_size() > 1:
        unused = _unused_parameters(session, raw_model, amp)
        find_unused = distributed.any_rank(bool(unused), device)
        if find_unused and main:
            say(logger, f"note: {len(unused)} parameters get no gradient from the losses (e.g. {unused[:3]}); "
                        "DDP runs with find_unused_parameters=True")
        model = distributed.wrap_ddp(
            model, device=device, sync_batchnorm=training.sync_batchnorm, find_unused=find_unused
        )
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
        planned = _planned_epochs(checkpoint)
        if planned is not None and planned != training.epochs:
            scheduler = _replayed_scheduler(session, optimizer, micro_steps, checkpoint["global_step"])
            if main:
                say(logger, f"training.epochs changed from {planned} to {training.epochs}: the learning-rate "
                            f"schedule now spans {training.epochs} epochs")
        else:
            scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        if ema is not None and checkpoint.get("ema") is not None:
            ema.load_state_dict(checkpoint["ema"])
        start_epoch, skip_steps = checkpoint["epoch"], checkpoint["step_in_epoch"]
        global_step = checkpoint["global_step"]
        best_value = checkpoint.get("best_value")
        stale_validations = checkpoint.get("stale_validations", 0)
        restore_rng_state(checkpoint["rng"])
        if main:
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
    outputs, last_evaluator = RunOutputs(session, run_dir, main=main), None  # TensorBoard, images, plots
    log_every = recipe.logging.log_every
    accumulation = training.grad_accum_steps
    single = distributed.world_size() == 1
    last_path = run_dir / "checkpoints" / "last.pt"
    kept = None  # the last checkpoint written: it holds good weights (checked before writing)
    if resume_from is not None:
        kept = f"{last_path} (after epoch {start_epoch})" if skip_steps == 0 else (
            f"{last_path} (epoch {start_epoch + 1}, step {skip_steps})")

    def non_finite(message: str) -> NonFiniteLossError:
        where = f"the last good checkpoint is kept: {kept}" if kept else "no checkpoint had been written yet"
        return NonFiniteLossError(f"{message}; {where}")

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
            stopping = False  # agreed by every rank; acted on at the end of an accumulation group
            try:
                for batch in session.train_loader:
                    if step >= micro_steps:
                        break
                    batch = session.prepare_batch(batch)
                    if session.batch_mixing is not None:
                        batch["images"], batch["labels"] = session.batch_mixing(batch["images"], batch["labels"])
                    parts = train_step(state, batch, epoch=epoch, micro_step=step, last=step + 1 == micro_steps)
                    for name, value in parts.items():
                        sums[name] = sums[name] + value if name in sums else value.clone()
                    counted += 1
                    step += 1
                    group_done = step % accumulation == 0 or step == micro_steps
                    if group_done:
                        global_step += 1
                    if single:
                        stopping = stop.received is not None
                    if step % log_every == 0 or step == micro_steps:
                        means, stop_asked = _reduce_means(sums, counted, stop=stop.received is not None, device=device)
                        stopping = stopping or stop_asked
                        if not all(math.isfinite(v) for v in means.values()):
                            raise non_finite(f"non-finite loss at epoch {epoch + 1}, step {step} (mean of the steps "
                                             f"since the last read): {format_parts(means)}")
                        progress.update(step=step, parts=means, lr=optimizer.param_groups[0]["lr"],
                                        images=counted * training.batch_size)
                        outputs.on_log(step=global_step, parts=means, lr=optimizer.param_groups[0]["lr"])
                    if stopping and group_done:
                        if not _weights_finite(raw_model):
                            raise non_finite(f"the weights became non-finite by epoch {epoch + 1}, step {step}")
                        if main:
                            save_checkpoint(checkpoint_state(epoch, step), run_dir / "checkpoints" / "last.pt")
                        distributed.barrier()
                        raise Interrupted(
                            f"stopped by signal {stop.received or 'on another rank'} "
                            f"at epoch {epoch + 1}, step {step}; "
                            f"last.pt saved; resume with: trainer train --resume {run_dir}"
                        )
            finally:
                progress.close()
            skip_steps = 0
            means, _ = _reduce_means(sums, counted, stop=False, device=device)
            if not _weights_finite(raw_model):
                raise non_finite(f"the weights became non-finite in epoch {epoch + 1} (last loss read: "
                                 f"{format_parts(means)})")
            row: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
            row.update({f"train/{name}": value for name, value in means.items()})
            validate = (epoch + 1) % training.val_every == 0 or epoch + 1 == training.epochs
            improved = False
            if validate:
                eval_model = ema.module if ema is not None else raw_model
                metrics, last_evaluator = evaluate(model=eval_model, session=session, amp_dtype=amp)
                outputs.on_validation(epoch=epoch + 1, model=eval_model)
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
            outputs.on_epoch_end(row)
            if main:
                state_dict = checkpoint_state(epoch + 1, 0)
                save_checkpoint(state_dict, run_dir / "checkpoints" / "last.pt")
                if improved:
                    save_checkpoint(state_dict, run_dir / "checkpoints" / "best.pt")
                csv_log.write(history)
            kept = f"{last_path} (after epoch {epoch + 1})"
            result.epochs_done = epoch + 1
            distributed.barrier()
            patience = training.early_stopping.patience
            if patience > 0 and stale_validations >= patience:
                if main:
                    say(logger, f"early stopping: {best_metric} did not improve for {patience} validations")
                break
    result.best_value = best_value
    outputs.finish(last_evaluator, epochs_done=result.epochs_done)
    if main and result.last_metrics:
        console.print(metrics_table(result.last_metrics, title=f"validation after epoch {result.epochs_done}"))
    return result


def _read_means(sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
    """One host sync for all loss parts (this process only)."""
    if not sums:
        return {}
    names = list(sums)
    values = (torch.stack([sums[name].float() for name in names]) / max(count, 1)).tolist()
    return dict(zip(names, values))


def _reduce_means(
    sums: dict[str, torch.Tensor], count: int, *, stop: bool, device: torch.device
) -> tuple[dict[str, float], bool]:
    """The loss parts averaged over the steps and the ranks, and whether any rank was asked to stop:
    one collective and one host sync. Every rank gets the same numbers, so all ranks stop together
    (on a non-finite loss or a signal)."""
    if distributed.world_size() == 1:
        return _read_means(sums, count), stop
    names = list(sums)
    values = [sums[name].float().reshape(()) for name in names]
    packed = torch.stack(values + [torch.tensor(float(stop), device=device)])
    total = distributed.all_reduce_sum(packed).tolist()
    scale = max(count, 1) * distributed.world_size()
    return {name: value / scale for name, value in zip(names, total[:-1])}, total[-1] > 0
