"""The one error type that data code raises for bad input (files, annotations, options)."""

from __future__ import annotations


class DataError(Exception):
    """Bad data or a bad data option; the message names the file (and line) and the problem.

    The CLI maps it to exit code 2 when raised while building (before the first batch) and to
    exit code 1 when raised during the run (e.g. a corrupt image met in epoch 3).
    """


class DataWarning(UserWarning):
    """Data that was repaired rather than rejected (e.g. boxes clipped to the image); one per data set."""
