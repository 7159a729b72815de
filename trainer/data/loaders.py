"""Data loaders whose augmentation is a pure function of (seed, epoch, index).

The sampler tags every index with the epoch, and the dataset wrapper seeds torch's RNG from
(seed, epoch, index) before the transforms run. Any worker count, persistent workers, DDP ranks and
a resumed run therefore all see the same augmented samples.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from trainer.data.errors import DataError


class EpochTaggedSampler(Sampler):
    """Yields (epoch, index); shuffles with a generator seeded from (seed, epoch)."""

    def __init__(self, *, size: int, shuffle: bool, seed: int, distributed: bool) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.skip = 0
        self.distributed = DistributedSampler(range(size), shuffle=shuffle, seed=seed) if distributed else None

    def set_epoch(self, epoch: int, *, skip_batches: int = 0, batch_size: int = 1) -> None:
        """Select the epoch's order; skip the first batches (a run resumed mid-epoch)."""
        self.epoch = epoch
        self.skip = skip_batches * batch_size
        if self.distributed is not None:
            self.distributed.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.distributed is not None:
            indices = list(self.distributed)
        elif self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            indices = torch.randperm(self.size, generator=generator).tolist()
        else:
            indices = list(range(self.size))
        return iter([(self.epoch, index) for index in indices[self.skip:]])

    def __len__(self) -> int:
        full = len(self.distributed) if self.distributed is not None else self.size
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
        state = torch.get_rng_state()
        torch.manual_seed((self.seed * 1_000_003 + epoch * 1_000_033 + index) % (2**63 - 1))
        try:
            sample = self.dataset[index]
            return self.transform(sample) if self.transform is not None else sample
        finally:
            torch.set_rng_state(state)


def build_loader(
    *, dataset: AugmentedDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int, pin_memory: bool,
    collate: Callable[[list[Any]], Any], distributed: bool, drop_last: bool,
) -> DataLoader:
    if len(dataset) == 0:
        raise DataError("the data set is empty")
    sampler = EpochTaggedSampler(size=len(dataset), shuffle=shuffle, seed=seed, distributed=distributed)
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
        generator=torch.Generator().manual_seed(seed),  # never draws from (and shifts) the global RNG
    )
