"""SIGINT / SIGTERM during a run: the first asks for an orderly stop (finish the step, save last.pt);
a second one stops at once, wherever the run is (training, validation, writing a checkpoint), with
an `Interrupted` that says which checkpoint was kept."""

from __future__ import annotations

import signal
import time
from typing import Any

from trainer.engine.failures import Interrupted, KeptCheckpoint


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class StopSignal:
    """A second signal within `repeat_window` seconds of the first is ignored: a launcher (torchrun)
    forwards the SIGINT that the terminal already sent to every process, and that copy must not
    cancel the orderly stop. `phase` (set by the loop) says where a stop at once happened."""

    repeat_window = 2.0

    def __init__(self, kept: KeptCheckpoint | None = None) -> None:
        self.kept = kept or KeptCheckpoint(run_dir=None)
        self.received: int | None = None
        self.received_at = 0.0
        self.phase = "starting"
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignal":
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is None:
            self.received, self.received_at = number, time.monotonic()
            return
        if time.monotonic() - self.received_at < self.repeat_window:
            return
        self.restore()  # a third signal gets the default behaviour
        raise Interrupted(f"stopped at once by a second {signal_name(number)} during {self.phase}; {self.kept.tail()}")

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def __exit__(self, *exc: Any) -> None:
        self.restore()
