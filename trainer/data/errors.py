"""The one error type that data code raises for bad input (files, annotations, options), and the
message of an error raised in a DataLoader worker. Imports nothing (the command line reads it)."""

from __future__ import annotations


class DataError(Exception):
    """Bad data or a bad data option; the message names the file (and line) and the problem.

    The CLI maps it to exit code 2 when raised while building (before the first batch) and to
    exit code 1 when raised during the run (e.g. a corrupt image met in epoch 3).
    """


class DataWarning(UserWarning):
    """Data that was repaired rather than rejected (e.g. boxes clipped to the image); one per data set."""


def worker_error_message(error: BaseException) -> str:
    """The message of an error raised in a DataLoader worker, without the worker's traceback that
    the DataLoader puts into it ("Caught X in DataLoader worker process 0. Original Traceback ...")."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else text
    name = type(error).__name__
    for prefix in (f"{type(error).__module__}.{name}: ", f"{name}: "):
        if last.startswith(prefix):
            return last[len(prefix):]
    return last
