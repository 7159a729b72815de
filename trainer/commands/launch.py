"""`trainer train --nproc N`: the same command again, under torchrun, in N processes on this machine.

`trainer train recipe.yaml --nproc 8 K=V` runs what

    torchrun --standalone --nproc-per-node 8 -m trainer train recipe.yaml K=V

runs: the torchrun agent (torch.distributed.run, here in this process) starts 8 workers, each
`python -m trainer train ...` with RANK, LOCAL_RANK, WORLD_SIZE and the rendezvous in its
environment. `--standalone` picks a free port, so several runs can share a machine. The exit code
is the workers': 2 for a recipe or usage error, 1 for a failure during the run (torchrun itself
would turn every failure into 1 and print a traceback).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys

from trainer.engine.reporting import console


def strip_nproc(argv: list[str]) -> list[str]:
    """`argv` without `--nproc N` / `--nproc=N`."""
    kept: list[str] = []
    skip_next = False
    for argument in argv:
        if skip_next:
            skip_next = False
        elif argument == "--nproc":
            skip_next = True
        elif not argument.startswith("--nproc="):
            kept.append(argument)
    return kept


def torchrun_arguments(nproc: int, argv: list[str]) -> list[str]:
    """torch.distributed.run's arguments: N workers on this machine, each `python -m trainer <argv>`."""
    return ["--standalone", "--nproc-per-node", str(nproc), "-m", "trainer", *strip_nproc(argv)]


def launch_torchrun(*, nproc: int, argv: list[str]) -> int:
    """Run `python -m trainer <argv minus --nproc>` in `nproc` processes under torchrun; the exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    arguments = torchrun_arguments(nproc, argv)
    console.print(f"launching: torchrun {shlex.join(arguments)}", markup=False, highlight=False)
    omp_before = os.environ.get("OMP_NUM_THREADS")
    if omp_before is None:  # torchrun would say 1; share the cores instead (CPU runs)
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        run(get_args_parser().parse_args(arguments))
        return 0
    except ChildFailedError as error:
        codes = [failure.exitcode for failure in error.failures.values()]
        failed = [code for code in codes if code > 0]
        if not failed:  # killed by a signal
            print(f"run stopped: a worker was killed ({', '.join(_describe(c) for c in codes)})", file=sys.stderr)
            return 1
        return 2 if 2 in failed else max(failed)
    except SignalException as error:  # the agent got SIGINT/SIGTERM and passed it to the workers
        print(f"run stopped: signal {error.sigval} passed to the workers", file=sys.stderr)
        return 1
    finally:
        for number, handler in handlers.items():  # the agent installs its own
            signal.signal(number, handler)
        if omp_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
