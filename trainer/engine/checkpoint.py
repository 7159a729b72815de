"""Checkpoints: written atomically (temp file + rename), loaded with weights_only=True."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), numpy_state[2], numpy_state[3], numpy_state[4]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


class CheckpointError(Exception):
    pass


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """weights_only=True: tensors and plain containers only, never arbitrary pickled objects.
    `mmap` reads tensors lazily (a cheap look at the counters of a large checkpoint)."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises several types for a bad file; all mean the same here
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from error


def model_state(checkpoint: dict[str, Any], *, prefer_ema: bool = True) -> dict[str, torch.Tensor]:
    """The weights to evaluate or export: EMA weights when the run kept them, else the model's."""
    if prefer_ema and checkpoint.get("ema") is not None:
        return {key.removeprefix("module."): value for key, value in checkpoint["ema"].items() if key != "n_averaged"}
    return checkpoint["model"]
