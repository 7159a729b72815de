"""The GPU fast path, checked on the CPU where it can be: bf16 autocast, channels_last, gradient
accumulation (== one large batch), EMA per optimizer step, fused optimizers and cuDNN settings.
fp16 with GradScaler and torch.compile need CUDA and are skipped without it."""

from __future__ import annotations

import copy
import csv
import math

import pytest
import torch
from torch import nn

from tests.conftest import tiny_classification_recipe
from trainer.commands.train import train
from trainer.components import load_builtin_components
from trainer.engine.checkpoint import load_checkpoint
from trainer.engine.device import autocast_dtype, configure_backends
from trainer.engine.ema import build_ema
from trainer.engine.optimizers import build_optimizer
from trainer.engine.train_step import StepState, train_step
from trainer.losses.module import build_loss_module

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
load_builtin_components()


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared machine: one thread is faster than several fighting over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyNet(nn.Module):
    """BN-free, so that a batch split in two gives exactly the gradient of the whole batch."""

    def __init__(self, batchnorm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8) if batchnorm else nn.Identity()
        self.fc = nn.Linear(8, 4)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.relu(self.norm(self.conv(images)))
        return {"logits": self.fc(x.mean(dim=(2, 3)))}


def _state(model: nn.Module, *, accumulation: int = 1, amp=None, device="cpu", grad_clip=None, ema=None,
           fp16=False) -> StepState:
    device = torch.device(device)
    optimizer = build_optimizer(model=model, options={"name": "sgd", "lr": 0.1, "momentum": 0.9},
                                no_decay_norm_bias=True, device=device)
    return StepState(
        model=model, loss_module=build_loss_module([{"criterion": "cross_entropy"}]), optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0),
        scaler=torch.amp.GradScaler(device.type, enabled=fp16), ema=ema, device=device, amp_dtype=amp,
        grad_clip=grad_clip, accumulation=accumulation,
    )


def _batch(size: int = 8, seed: int = 0, device="cpu") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"images": torch.randn(size, 3, 16, 16, generator=g).to(device),
            "labels": torch.randint(0, 4, (size,), generator=g).to(device)}


def test_accumulating_two_half_batches_equals_one_batch():
    torch.manual_seed(0)
    whole, split = TinyNet(), TinyNet()
    split.load_state_dict(whole.state_dict())
    initial = copy.deepcopy(whole.state_dict())
    batch = _batch(8)
    one = _state(whole)
    train_step(one, batch, epoch=0, micro_step=0)
    two = _state(split, accumulation=2)
    first = {k: v[:4] for k, v in batch.items()}
    train_step(two, first, epoch=0, micro_step=0)
    assert all(p.grad is not None for p in split.parameters())  # accumulated, not stepped yet
    assert torch.equal(split.fc.weight, initial["fc.weight"])
    train_step(two, {k: v[4:] for k, v in batch.items()}, epoch=0, micro_step=1)
    for (name, expected), got in zip(whole.named_parameters(), split.parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6, msg=name)
    assert all(p.grad is None for p in split.parameters())


def test_short_last_accumulation_group_steps_and_leaves_no_gradient():
    torch.manual_seed(0)
    model = TinyNet()
    state = _state(model, accumulation=4)
    before = copy.deepcopy(model.state_dict())
    train_step(state, _batch(4), epoch=0, micro_step=0)
    train_step(state, _batch(4, seed=1), epoch=0, micro_step=1, last=True)  # epoch ends mid-group
    assert all(p.grad is None for p in model.parameters())
    assert not torch.equal(model.fc.weight, before["fc.weight"])


def test_ema_updates_once_per_optimizer_step():
    torch.manual_seed(0)
    model = TinyNet(batchnorm=True)
    ema = build_ema(model=model, decay=0.9, warmup_steps=0)
    state = _state(model, accumulation=2, ema=ema)
    for step in range(4):
        train_step(state, _batch(4, seed=step), epoch=0, micro_step=step)
    assert int(ema.n_averaged) == 2
    assert not torch.equal(ema.module.fc.weight, model.fc.weight)  # an average, not a copy


def test_bf16_autocast_and_channels_last_train_on_cpu():
    torch.manual_seed(0)
    model = TinyNet(batchnorm=True).to(memory_format=torch.channels_last)
    state = _state(model, amp=torch.bfloat16, grad_clip=1.0)
    losses = []
    for step in range(3):
        batch = _batch(8, seed=step)
        batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        losses.append(float(train_step(state, batch, epoch=0, micro_step=step)["total"]))
    assert all(math.isfinite(v) for v in losses)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 master weights


def test_amp_modes():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert autocast_dtype(amp="auto", device=cpu) is None  # auto is off on the CPU
    assert autocast_dtype(amp="bf16", device=cpu) == torch.bfloat16
    assert autocast_dtype(amp="none", device=gpu) is None
    assert autocast_dtype(amp="fp16", device=gpu) == torch.float16


def test_fused_optimizer_on_cuda_unless_the_recipe_says_otherwise():
    model = TinyNet()
    gpu = torch.device("cuda", 0)
    fused = build_optimizer(model=model, options={"name": "adamw"}, no_decay_norm_bias=True, device=gpu)
    assert fused.defaults["fused"] is True
    chosen = build_optimizer(model=model, options={"name": "adamw", "foreach": True}, no_decay_norm_bias=True,
                             device=gpu)
    assert not chosen.defaults["fused"]
    cpu = build_optimizer(model=model, options={"name": "sgd"}, no_decay_norm_bias=True, device=torch.device("cpu"))
    assert cpu.defaults["fused"] is True  # the CPU fused kernels are faster too (scripts/bench_train.py)


def test_cudnn_benchmark_and_deterministic_follow_the_recipe():
    saved = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.get_float32_matmul_precision()
    try:
        configure_backends(device=torch.device("cuda", 0), cudnn_benchmark=True, deterministic=False)
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        configure_backends(device=torch.device("cuda", 0), cudnn_benchmark=True, deterministic=True)
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def test_recipe_with_the_fast_path_switched_on_trains(tmp_path, write_recipe):
    """bf16 autocast, channels_last, accumulation with a short last group, clipping and EMA together."""
    recipe = tiny_classification_recipe()
    recipe["data"]["train"]["num_images"] = 24
    recipe["training"].update(
        epochs=1, batch_size=4, amp="bf16", channels_last=True, grad_accum_steps=4, grad_clip=5.0,
        ema={"enabled": True, "warmup_steps": 1},
    )
    recipe["logging"]["log_every"] = 2
    run = train(recipes=[str(write_recipe(recipe))], overrides=[], output_dir=str(tmp_path), name="fast")
    (row,) = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert math.isfinite(float(row["train/total"])) and 0.0 <= float(row["val/top1"]) <= 1.0
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["counters"]["global_step"] == 2  # 6 micro-batches in groups of 4: one full group, one short
    assert int(checkpoint["ema"]["n_averaged"]) == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())


@cuda
def test_fp16_with_grad_scaler_on_cuda():
    torch.manual_seed(0)
    model = TinyNet(batchnorm=True).cuda()
    state = _state(model, amp=torch.float16, device="cuda", grad_clip=1.0, fp16=True)
    assert state.scaler.is_enabled()
    for step in range(3):
        parts = train_step(state, _batch(8, seed=step, device="cuda"), epoch=0, micro_step=step)
        assert torch.isfinite(parts["total"])
    assert state.scaler.get_scale() > 0
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


@cuda
def test_torch_compile_on_cuda():
    torch.manual_seed(0)
    eager = TinyNet(batchnorm=True).cuda()
    compiled_source = copy.deepcopy(eager)
    compiled = torch.compile(compiled_source)
    for model in (eager, compiled):
        state = _state(model, device="cuda")
        for step in range(2):
            train_step(state, _batch(8, seed=step, device="cuda"), epoch=0, micro_step=step)
    for (name, expected), got in zip(eager.named_parameters(), compiled_source.parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4, msg=name)


@cuda
def test_pinned_batches_reach_the_gpu(tmp_path, write_recipe):
    from trainer.engine.session import build_session
    from trainer.recipe import load_recipe

    recipe = tiny_classification_recipe()
    recipe["environment"].update(pin_memory=True)
    loaded = load_recipe([write_recipe(recipe)])
    session = build_session(loaded, device=torch.device("cuda", 0))
    assert session.train_loader.pin_memory
    batch = session.prepare_batch(next(iter(session.train_loader)))
    assert batch["images"].is_cuda and batch["images"].dtype == torch.float32
