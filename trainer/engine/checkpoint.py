"""Checkpoint files: written atomically (temp file, fsync, rename), read with weights_only=True."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.files import FileReadError, load_torch

TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not fit the recipe (exit code 2)."""


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
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class _RecordingWriter:
    """A file handle that keeps the OSError of a failed write: torch's writer reports it only as a
    RuntimeError ("unexpected pos 704 vs 598"), which says nothing about a full disk."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write to `.NAME.tmp-PID` in the same directory, fsync, then rename over `path`: a failed or
    killed write leaves the previous file as it was. A failed write (e.g. disk full) is the OSError
    the system gave, carrying `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            writer = _RecordingWriter(handle)
            try:
                torch.save(state, writer)
            except RuntimeError as error:
                if writer.error is None:
                    raise
                raise writer.error from error
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise
    finally:
        if temporary.exists():
            temporary.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files (`.NAME.tmp-PID`) that processes killed while writing left in `folder`;
    a live process's file is left alone. Returns the removed paths."""
    removed = []
    for path in sorted(folder.glob(".*.tmp-*")) if folder.is_dir() else []:
        match = TEMP_NAME.match(path.name)
        if match and int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A torch file read with weights_only=True (tensors and plain containers, never pickled code);
    any problem is a CheckpointError naming the file. `mmap` reads tensors lazily."""
    try:
        loaded = load_torch(path, map_location=map_location, mmap=mmap)
    except FileReadError as error:
        raise CheckpointError(f"cannot read checkpoint {error}") from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a checkpoint (a dict)")
    return loaded
