"""Trainer train step vs a minimal hand-written PyTorch loop, same model, same init, same batches.

For one shipped shapes recipe per task (classification resnet18, detection yolox_nano,
segmentation pidnet_s; small batches, see bench_common.TASK_RECIPES):

- trainer: the Session from `build_session`, the optimizer / scheduler / EMA built as `fit` builds
  them, and per batch what the fit loop does: `session.prepare_batch`, batch mixing,
  `train_step(StepState)`, the device-side sums of the loss parts, one host read every
  `logging.log_every` steps.
- plain: a deep copy of the same model taken before any step (same init), a torch optimizer of the
  same name and options (one parameter group), the recipe's LR schedule, EMA by
  `torch._foreach_lerp_` when the recipe has EMA; per batch: normalise, forward, the criterion
  called directly (F.cross_entropy for classification), backward, step. No loss module, no
  StepState, no part sums.

Two measurements, each alternating one trainer step and one plain step in this process (so both
see the same machine load), reported as the median over step pairs of the img/s ratio. Before each
pair the plain model gets the trainer model's current weights (untimed), so both do the same work:
1. prefetched: the same loader batches, fetched once, batch i fed to both (pure step cost);
2. with loader: each step also waits for the next batch of its own loader: the trainer's train
   loader vs a plain DataLoader over the same data set and transforms (same worker count, same
   collate, shuffle=True, no per-sample reseeding).

Usage: python scripts/bench_train.py [--tasks classification detection segmentation] [--pairs 10] [--plain-fused]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time

import bench_common as bc
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainer.engine.ema import build_ema
from trainer.engine.epoch import read_means
from trainer.engine.optimizers import build_optimizer
from trainer.engine.train_state import build_scheduler
from trainer.engine.train_step import StepState, train_step

WARMUP = 2  # untimed step pairs first


# ----------------------------------------------------------------------------------- trainer side
class TrainerLoop:
    def __init__(self, session) -> None:
        self.session = session
        training = session.recipe.training
        model = session.model
        if training.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(
            model=model, options=training.optimizer, no_decay_norm_bias=training.no_decay_norm_bias,
            device=session.device,
        )
        scheduler = build_scheduler(session, optimizer, micro_steps=10_000)
        ema = (
            build_ema(model=model, decay=training.ema.decay, warmup_steps=training.ema.warmup_steps)
            if training.ema.enabled else None
        )
        self.state = StepState(
            model=model, loss_module=session.loss_module, optimizer=optimizer, scheduler=scheduler,
            scaler=torch.amp.GradScaler("cpu", enabled=False), ema=ema, device=session.device, amp_dtype=None,
            grad_clip=training.grad_clip, accumulation=training.grad_accum_steps,
        )
        self.log_every = session.recipe.logging.log_every
        self.step_count = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.counted = 0
        model.train()

    def run(self, batches) -> None:
        for batch in batches:
            batch = self.session.prepare_batch(batch)
            if self.session.batch_mixing is not None:
                batch["images"], batch["labels"] = self.session.batch_mixing(batch["images"], batch["labels"])
            parts = train_step(self.state, batch, epoch=0, micro_step=self.step_count)
            for name, value in parts.items():
                self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
            self.counted += 1
            self.step_count += 1
            if self.step_count % self.log_every == 0:  # the fit loop's one host read per log_every steps
                read_means(self.sums, self.counted)


# ------------------------------------------------------------------------------------- plain side
class PlainLoop:
    """What a user would write by hand for the same recipe."""

    def __init__(self, session, model: nn.Module, *, fused: bool = False) -> None:
        recipe = session.recipe
        training = recipe.training
        self.task = recipe.task
        self.model = model.to(memory_format=torch.channels_last) if training.channels_last else model
        self.channels_last = training.channels_last
        options = dict(training.optimizer)
        name = options.pop("name")
        factory = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
        if "betas" in options:
            options["betas"] = tuple(options["betas"])
        if fused:  # the same fused kernels as the trainer: isolates the engine's own cost
            options["fused"] = True
        self.optimizer = factory(self.model.parameters(), **options)
        # the recipe's LR schedule (warmup included), so both models see the same learning rates
        self.scheduler = build_scheduler(session, self.optimizer, micro_steps=10_000)
        self.grad_clip = training.grad_clip
        self.ema = None
        if training.ema.enabled:
            self.ema = copy.deepcopy(self.model).requires_grad_(False)
            self.ema_decay = training.ema.decay
        mean, std = session.normalizer.mean.clone(), session.normalizer.std.clone()
        self.mean, self.std = mean, std
        entry = session.loss_module.entries[0]
        assert len(session.loss_module.entries) == 1, "plain loop written for one criterion"
        self.criterion = copy.deepcopy(entry.criterion)
        self.label_smoothing = getattr(self.criterion, "label_smoothing", 0.0)
        self.model.train()

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        if self.task == "classification":
            return F.cross_entropy(outputs["logits"], batch["labels"], label_smoothing=self.label_smoothing)
        if self.task == "detection":
            if "box_preds" in outputs:
                parts = self.criterion(
                    box_preds=outputs["box_preds"], obj_logits=outputs["obj_logits"], cls_logits=outputs["cls_logits"],
                    grid_xy=outputs["grid_xy"], strides=outputs["strides"], gt_boxes=batch["gt_boxes"],
                    gt_labels=batch["gt_labels"], epoch=0,
                )
            else:
                parts = self.criterion(
                    cls_logits=outputs["cls_logits"], box_regression=outputs["box_regression"],
                    anchors=outputs["anchors"], gt_boxes=batch["gt_boxes"], gt_labels=batch["gt_labels"],
                )
            return sum(parts.values())
        if "logits_p" in outputs:
            parts = self.criterion(
                logits_p=outputs["logits_p"], logits=outputs["logits"], boundary_logits=outputs["boundary_logits"],
                labels=batch["labels"],
            )
            return sum(parts.values())
        return F.cross_entropy(outputs["logits"], batch["labels"], ignore_index=255)

    def run(self, batches) -> None:
        for batch in batches:
            images = (batch["images"].float() / 255.0 - self.mean) / self.std
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            outputs = self.model(images)
            loss = self.loss(outputs, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - self.ema_decay)
                    for e, m in zip(self.ema.buffers(), self.model.buffers()):
                        e.copy_(m)


class _Transformed(Dataset):
    """The same base data set and transform as the trainer's, without per-sample reseeding."""

    def __init__(self, augmented) -> None:
        self.base, self.transform = augmented.dataset, augmented.transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        sample = self.base[index]
        return self.transform(sample) if self.transform is not None else sample


def plain_loader(session) -> DataLoader:
    workers = session.recipe.environment.num_workers
    return DataLoader(
        _Transformed(session.train_set), batch_size=session.recipe.training.batch_size, shuffle=True,
        num_workers=workers, collate_fn=session.task.collate, drop_last=True, persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def endless(loader, set_epoch: bool):
    for epoch in itertools.count():
        if set_epoch:
            loader.sampler.set_epoch(epoch)
        yield from loader


def bench_task(task: str, path, overrides: list[str], pairs: int, *, plain_fused: bool = False) -> list[list]:
    torch.manual_seed(0)
    session = bc.load_session(path, overrides)
    # same init: both sides get a deep copy taken before any step, made the same way one after the
    # other (the model as first built ran ~4 % slower than its own copy here: memory placement)
    session.model = copy.deepcopy(session.model)
    plain_model = copy.deepcopy(session.model)
    trainer_loop, plain_loop = TrainerLoop(session), PlainLoop(session, plain_model, fused=plain_fused)
    batch_size = session.recipe.training.batch_size
    rows = []

    def same_weights() -> None:
        """Both models start each step pair from the same weights (untimed), so they do the same work
        (the activations, and the loss's data-dependent parts, follow the weights). The weights are
        written into both models, so neither side starts with its memory freshly touched (an A/A run
        with a one-way copy favoured the side copied into by 0.4-2 %)."""
        weights = {name: value.clone() for name, value in trainer_loop.state.model.state_dict().items()}
        plain_loop.model.load_state_dict(weights)
        trainer_loop.state.model.load_state_dict(weights)

    # 1. prefetched: the same CPU batches, batch i fed to the trainer step then to the plain step
    batches = list(itertools.islice(endless(session.train_loader, True), pairs + WARMUP))
    feed_t, feed_p = iter(batches), iter(batches)
    t_trainer, t_plain = bc.alternate(
        lambda: trainer_loop.run([next(feed_t)]), lambda: plain_loop.run([next(feed_p)]), rounds=pairs, warmup=WARMUP,
        before=same_weights,
    )
    rows.append(_row(task, "prefetched", batch_size, t_trainer, t_plain))

    # 2. loader in the loop: each step includes waiting for the next batch of its own loader
    trainer_stream = endless(session.train_loader, True)
    plain_stream = endless(plain_loader(session), False)
    t_trainer, t_plain = bc.alternate(
        lambda: trainer_loop.run([next(trainer_stream)]), lambda: plain_loop.run([next(plain_stream)]),
        rounds=pairs, warmup=WARMUP + 1, before=same_weights,
    )
    workers = session.recipe.environment.num_workers
    rows.append(_row(task, f"with loader ({workers} workers)", batch_size, t_trainer, t_plain, cpu=False))
    return rows


def _row(task, mode, batch_size, t_trainer, t_plain, *, cpu: bool = True) -> list:
    trainer_ips = batch_size / bc.median_of(t_trainer)
    plain_ips = batch_size / bc.median_of(t_plain)
    ratio = bc.median_ratio(t_plain, t_trainer)  # trainer img/s over plain img/s, per step pair
    cpu_ratio = bc.median_ratio(t_plain, t_trainer, which=1) if cpu else None
    verdict = "ok" if ratio >= 0.97 else ("ok by CPU time" if (cpu_ratio or 0.0) >= 0.97 else "BELOW 0.97")
    return [task, mode, batch_size, trainer_ips, plain_ips, ratio, "-" if cpu_ratio is None else cpu_ratio, verdict]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--pairs", type=int, default=4 if bc.quick() else 10, help="timed step pairs per mode")
    parser.add_argument("--plain-fused", action="store_true",
                        help="give the plain loop the fused optimizer too (by default it uses torch's default)")
    bc.add_threads_option(parser)
    args = parser.parse_args()
    bc.apply_threads(args.threads)
    print(f"bench_train: {bc.machine()}")
    rows = []
    for task, path, overrides in bc.available_tasks(args.tasks):
        start = time.perf_counter()
        rows += bench_task(task, path, overrides, args.pairs, plain_fused=args.plain_fused)
        print(f"  {task}: {time.perf_counter() - start:.0f} s")
    bc.table(rows, ["task", "batches", "batch", "trainer img/s", "plain img/s", "ratio wall", "ratio CPU",
                    "target >= 0.97"],
             title="train step: trainer vs hand-written loop (same model, init, data); ratio = trainer / plain "
                   "img/s, median over alternated step pairs; CPU = this process's CPU time (not the workers'); "
                   f"plain optimizer: {'fused' if args.plain_fused else 'torch default (for-loop on the CPU)'}")


if __name__ == "__main__":
    main()
