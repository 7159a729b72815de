"""Data loaders whose augmentation is a pure function of (seed, epoch, index).

The sampler tags every index with the epoch, and the dataset wrapper seeds torch's RNG from
(seed, epoch, index) before the transforms run. Any worker count, persistent workers, DDP ranks and
a resumed run therefore all see the same augmented samples.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from trainer.data.errors import DataError


def _process_group() -> tuple[int, int]:
    """(world size, rank) of the torch.distributed process group; (1, 0) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochTaggedSampler(Sampler):
    """Yields (epoch, index); shuffles with a generator seeded from (seed, epoch).

    Under torch.distributed every rank draws the same permutation and takes every `world`-th index
    starting at its rank, so with a per-process batch b the k-th global batch (the union over the
    ranks) is the k-th batch of b * world of a single process: training on N processes sees the
    same samples, in the same global batches, as one process with an N times larger batch.
    `pad` (training) repeats indices from the start so that every rank gets as many (every rank
    must run the same number of steps); without it (evaluation) nothing is counted twice.
    """

    def __init__(self, *, size: int, shuffle: bool, seed: int, distributed: bool, pad: bool = True) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.skip = 0
        self.world, self.rank = _process_group() if distributed else (1, 0)
        self.pad = pad

    def set_epoch(self, epoch: int, *, skip_batches: int = 0, batch_size: int = 1) -> None:
        """Select the epoch's order; skip the first batches (a run resumed mid-epoch)."""
        self.epoch = epoch
        self.skip = skip_batches * batch_size

    def _indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            indices = torch.randperm(self.size, generator=generator).tolist()
        else:
            indices = list(range(self.size))
        if self.world > 1:
            if self.pad and self.size % self.world:
                extra = self.world - self.size % self.world
                indices += (indices * (extra // max(self.size, 1) + 1))[:extra]
            indices = indices[self.rank :: self.world]
        return indices

    def _full_length(self) -> int:
        if self.world == 1:
            return self.size
        if self.pad:
            return -(-self.size // self.world)
        return len(range(self.rank, self.size, self.world))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, index) for index in self._indices()[self.skip:]])

    def __len__(self) -> int:
        full = self._full_length()
        return full - min(self.skip, full)


class AugmentedDataset(Dataset):
    """Applies `transform` to `dataset[index]` under an RNG seeded from (seed, epoch, index).

    `on_epoch(epoch)` (optional) runs before each sample is drawn; the detection mosaic uses it to
    switch itself off for the last epochs, inside each worker's copy of the data set.
    """

    def __init__(
        self, *, dataset: Dataset, transform: Callable[[Any], Any] | None, seed: int,
        on_epoch: Callable[[int], None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.on_epoch = on_epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if self.on_epoch is not None:
            self.on_epoch(epoch)
        # the CPU generator the transforms draw from, alone: torch.manual_seed would also reseed every
        # accelerator's generator (~250 us per sample, more than a shapes sample's transforms) and,
        # with num_workers=0, reset the training's CUDA RNG (dropout) at every sample
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed((self.seed * 1_000_003 + epoch * 1_000_033 + index) % (2**63 - 1))
        try:
            sample = self.dataset[index]
            return self.transform(sample) if self.transform is not None else sample
        finally:
            generator.set_state(state)


def ignore_stop_signals(worker_id: int) -> None:
    """worker_init_fn: workers ignore SIGINT and SIGTERM. A signal to the whole process group (Ctrl-C,
    Slurm's scancel, `kill -- -PGID`) then reaches the main process alone, which stops in order and
    ends its workers itself (they also exit when the main process is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_loader(
    *, dataset: AugmentedDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int, pin_memory: bool,
    collate: Callable[[list[Any]], Any], distributed: bool, drop_last: bool,
) -> DataLoader:
    if len(dataset) == 0:
        raise DataError("the data set is empty")
    # training (drop_last) pads so that every rank runs the same number of steps; evaluation does not
    sampler = EpochTaggedSampler(size=len(dataset), shuffle=shuffle, seed=seed, distributed=distributed, pad=drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=collate,
        drop_last=drop_last and len(sampler) >= batch_size,
        prefetch_factor=4 if num_workers > 0 else None,
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),  # never draws from (and shifts) the global RNG
    )
