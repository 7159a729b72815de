"""Device choice, autocast settings and seeding."""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            local_rank = int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{name}' was asked for, but CUDA is not available on this machine")
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(*, seed: int, epoch: int, rank: int = 0) -> int:
    """Each epoch reseeds from (seed, epoch, rank), so a resumed run replays the same epochs."""
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31)
