"""torch.distributed helpers: the process group from torchrun's environment, rank checks, DDP."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    return rank() == 0


def init_from_environment(device: torch.device) -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR...); False if none."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return True


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(value):
    if not dist.is_initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (a copy); the tensor itself outside torch.distributed."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any rank (one tiny collective)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


def parameters_without_grad(model: nn.Module, loss_of_outputs) -> list[str]:
    """Trainable parameters that `loss_of_outputs(model)` (a 0-d tensor) does not depend on, from one
    forward and autograd.grad; the model's mode, buffers (BatchNorm statistics), .grad and the RNG
    state are left as they were. DDP needs find_unused_parameters=True exactly when this is non-empty
    (e.g. an output no loss reads, or a loss part listed in `exclude`)."""
    trainable = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    if not trainable:
        return []
    names, params = zip(*trainable)
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    model.train()
    try:
        total = loss_of_outputs(model)
        grads = torch.autograd.grad(total, list(params), allow_unused=True)
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        model.train(was_training)
    return [name for name, grad in zip(names, grads) if grad is None]


def wrap_ddp(model: nn.Module, *, device: torch.device, sync_batchnorm: bool, find_unused: bool = False) -> nn.Module:
    if sync_batchnorm:
        if device.type == "cpu":
            raise ValueError("training.sync_batchnorm needs CUDA devices (SyncBatchNorm has no CPU kernel)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused)


def unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
