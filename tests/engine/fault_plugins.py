"""Test faults as real plugin components (`imports: [tests.engine.fault_plugins]`): a loss that
raises, sends signals or fills the disk at its N-th call, a data set that sends signals at its
N-th read."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from torch import nn

from trainer.data.shapes import ShapesDataset
from trainer.registry import DATASETS, LOSSES


def send_signals(count: int) -> None:
    for _ in range(count):
        os.kill(os.getpid(), signal.SIGTERM)


@LOSSES.register("fault_loss", heads={"classification": ("fc",)})
class FaultLoss(nn.Module):
    """Cross entropy that raises at call `fail_at`, sends `signals` SIGTERMs at call `signal_at`, or
    from call `disk_full_at` on points the next checkpoint write of this process in `checkpoints`
    at /dev/full, where every write fails with ENOSPC as on a full disk (0: never)."""

    def __init__(
        self, *, fail_at: int = 0, signal_at: int = 0, signals: int = 2, disk_full_at: int = 0, checkpoints: str = ""
    ) -> None:
        super().__init__()
        self.fail_at, self.signal_at, self.signals = fail_at, signal_at, signals
        self.disk_full_at, self.checkpoints = disk_full_at, Path(checkpoints)
        self.calls = 0

    def forward(self, *, logits, labels):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError(f"the loss failed on purpose at call {self.calls}")
        if self.calls == self.signal_at:
            send_signals(self.signals)
        if self.calls == self.disk_full_at:
            (self.checkpoints / f".last.pt.tmp-{os.getpid()}").symlink_to("/dev/full")
        return {"ce": nn.functional.cross_entropy(logits, labels)}


@DATASETS.register("signalling_shapes", tasks=("classification",))
class SignallingShapes(ShapesDataset):
    """`shapes` that sends `signals` SIGTERMs when sample `signal_index` is read the `signal_round`-th
    time (-1: never)."""

    def __init__(
        self, *, task: str, split: str, num_images: int, image_size: int = 64, signal_index: int = -1,
        signal_round: int = 1, signals: int = 2,
    ) -> None:
        super().__init__(task=task, split=split, num_images=num_images, image_size=image_size)
        self.signal_index, self.signal_round, self.signals = signal_index, signal_round, signals
        self.reads = 0

    def __getitem__(self, index: int) -> dict:
        if index == self.signal_index:
            self.reads += 1
            if self.reads == self.signal_round:
                send_signals(self.signals)
        return super().__getitem__(index)
