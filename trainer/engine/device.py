"""Device choice, autocast settings and seeding."""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch


class DeviceError(RuntimeError):
    """A device that this machine does not have (a usage error: exit code 2)."""


def device_problem(name: str) -> str | None:
    """Why this machine cannot run on device `name` (auto, cpu, cuda, cuda:N, mps), or None."""
    from trainer.recipe.schema import DEVICE  # the names environment.device accepts

    if (unknown := DEVICE.problem(name)) is not None:
        return unknown
    if name.startswith("cuda") and not torch.cuda.is_available():
        return f"device '{name}' was asked for, but CUDA is not available on this machine"
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        return f"device '{name}' was asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)"
    if name == "mps" and not torch.backends.mps.is_available():
        return "device 'mps' was asked for, but MPS (Apple GPUs) is not available on this machine"
    return None


def resolve_device(name: str) -> torch.device:
    """auto: the GPU of this process (cuda:LOCAL_RANK under torchrun), else the CPU; `cuda` without an
    index is also this process's GPU, so that every rank gets its own."""
    if name == "auto":
        if torch.cuda.is_available():
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    problem = device_problem(name)
    if problem is not None:
        raise DeviceError(problem)
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def autocast_dtype(*, amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `training.amp`, or None for full precision.

    auto: bf16 on CUDA GPUs that support it, else fp16; off on the CPU. bf16 on the CPU is allowed
    when asked for explicitly.
    """
    if amp == "none":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast_context(*, device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_backends(*, device: torch.device, cudnn_benchmark: bool, deterministic: bool) -> None:
    """environment.cudnn_benchmark / deterministic: cuDNN autotuning for fixed input sizes (fast), or
    deterministic kernels (reproducible, slower; benchmark is then off). fp32 matmuls may use TF32
    on CUDA unless deterministic."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if not deterministic:
            torch.set_float32_matmul_precision("high")  # TF32 tensor cores for fp32 matmuls


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(*, seed: int, epoch: int, rank: int = 0) -> int:
    """Each epoch reseeds from (seed, epoch, rank), so a resumed run replays the same epochs."""
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31)
