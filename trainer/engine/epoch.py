"""One training epoch of the fit loop: the steps, the loss read every `log_every` steps, and the
orderly stop mid-epoch on a signal (last.pt at the end of an accumulation group)."""

from __future__ import annotations

import math

import torch

from trainer.engine import distributed
from trainer.engine.device import epoch_seed, seed_everything
from trainer.engine.failures import Interrupted, NonFiniteLossError
from trainer.engine.fit_run import FitRun
from trainer.engine.reporting import EpochProgress, format_parts
from trainer.engine.stop_signal import signal_name
from trainer.engine.train_step import train_step


def weights_finite(model: torch.nn.Module) -> bool:
    """One host sync: every parameter finite (checked before a checkpoint is written)."""
    flags = [p.detach().isfinite().all() for p in model.parameters() if p.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def non_finite(run: FitRun, message: str) -> NonFiniteLossError:
    return NonFiniteLossError(f"{message}; {run.kept.tail()}")


def read_means(sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
    """One host sync for all loss parts (this process only)."""
    if not sums:
        return {}
    names = list(sums)
    values = (torch.stack([sums[name].float() for name in names]) / max(count, 1)).tolist()
    return dict(zip(names, values))


def reduce_means(
    sums: dict[str, torch.Tensor], count: int, *, stop: bool, device: torch.device
) -> tuple[dict[str, float], bool]:
    """The loss parts averaged over the steps and the ranks, and whether any rank was asked to stop:
    one collective and one host sync. Every rank gets the same numbers, so all ranks stop together
    (on a non-finite loss or a signal)."""
    if distributed.world_size() == 1:
        return read_means(sums, count), stop
    names = list(sums)
    values = [sums[name].float().reshape(()) for name in names]
    packed = torch.stack(values + [torch.tensor(float(stop), device=device)])
    total = distributed.all_reduce_sum(packed).tolist()
    scale = max(count, 1) * distributed.world_size()
    return {name: value / scale for name, value in zip(names, total[:-1])}, total[-1] > 0


def _stop_mid_epoch(run: FitRun, *, epoch: int, step: int) -> None:
    if not weights_finite(run.state.model):
        raise non_finite(run, f"the weights became non-finite by epoch {epoch + 1}, step {step}")
    run.state.counters.step_in_epoch = step
    run.save(["last.pt"], description=f"epoch {epoch + 1}, step {step}")
    distributed.barrier()
    by = signal_name(run.stop.received) if run.stop.received else "a signal on another rank"
    raise Interrupted(f"stopped by {by} at epoch {epoch + 1}, step {step}; {run.kept.tail()}")


def _log(run: FitRun, progress: EpochProgress, *, step: int, means: dict[str, float], images: int) -> None:
    lr = run.state.optimizer.param_groups[0]["lr"]
    progress.update(step=step, parts=means, lr=lr, images=images)
    run.outputs.on_log(step=run.state.counters.global_step, parts=means, lr=lr)


def train_epoch(run: FitRun, epoch: int) -> dict[str, float]:
    """Train epoch `epoch` (from its step `counters.step_in_epoch`); the mean loss parts."""
    session, counters, training = run.session, run.state.counters, run.session.recipe.training
    if counters.step_in_epoch == 0:
        seed_everything(epoch_seed(seed=session.recipe.environment.seed, epoch=epoch, rank=distributed.rank()))
    session.train_loader.sampler.set_epoch(epoch, skip_batches=counters.step_in_epoch,
                                           batch_size=training.batch_size)
    run.step_state.model.train()
    progress = EpochProgress(mode=session.recipe.logging.progress if run.main else "none", total=run.micro_steps,
                             epoch=epoch, epochs=training.epochs, logger=run.logger)
    sums: dict[str, torch.Tensor] = {}
    counted, step, stopping = 0, counters.step_in_epoch, False  # stopping: agreed by every rank
    single = distributed.world_size() == 1
    try:
        for batch in session.train_loader:
            if step >= run.micro_steps:
                break
            run.stop.phase = f"training epoch {epoch + 1}, step {step + 1}"
            batch = session.prepare_batch(batch)
            if session.batch_mixing is not None:
                batch["images"], batch["labels"] = session.batch_mixing(batch["images"], batch["labels"])
            parts = train_step(run.step_state, batch, epoch=epoch, micro_step=step, last=step + 1 == run.micro_steps)
            for name, value in parts.items():
                sums[name] = sums[name] + value if name in sums else value.clone()
            counted, step = counted + 1, step + 1
            group_done = step % training.grad_accum_steps == 0 or step == run.micro_steps
            counters.global_step += int(group_done)
            stopping = stopping or (single and run.stop.received is not None)
            if step % session.recipe.logging.log_every == 0 or step == run.micro_steps:
                means, asked = reduce_means(sums, counted, stop=run.stop.received is not None, device=session.device)
                stopping = stopping or asked
                if not all(math.isfinite(v) for v in means.values()):
                    raise non_finite(run, f"non-finite loss at epoch {epoch + 1}, step {step} (mean of the steps "
                                          f"since the last read): {format_parts(means)}")
                _log(run, progress, step=step, means=means, images=counted * training.batch_size)
            if stopping and group_done:
                _stop_mid_epoch(run, epoch=epoch, step=step)
    finally:
        progress.close()
    counters.step_in_epoch = 0
    means, _ = reduce_means(sums, counted, stop=False, device=session.device)
    if not weights_finite(run.state.model):
        raise non_finite(run, f"the weights became non-finite in epoch {epoch + 1} (last loss read: "
                              f"{format_parts(means)})")
    return means
