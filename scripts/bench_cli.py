"""Wall time of `trainer --help`, of every `trainer COMMAND --help` and of one shell-completion call,
beside `python -c pass` (the interpreter's own start), as the median of several runs; also the CPU
time (user + system) of the process, which other work on a busy machine disturbs less.

    .venv/bin/python scripts/bench_cli.py [--repeats 7] [--target 0.5]

Exits 1 when a command takes more than `--target` CPU seconds above `python -c pass` (wall time
rises with the machine's load; CPU time much less).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import typer

from trainer.cli import app

TRAINER = [str(Path(sys.executable).with_name("trainer"))]


def command_lines() -> list[tuple[str, list[str], dict[str, str]]]:
    """(label, argv, extra environment) for every command of the app, nested groups included."""
    lines = [("python -c pass", [sys.executable, "-c", "pass"], {}), ("trainer --help", [*TRAINER, "--help"], {})]

    def walk(group, prefix: list[str]) -> None:
        for name in sorted(group.commands):
            command = group.commands[name]
            lines.append((" ".join(["trainer", *prefix, name, "--help"]), [*TRAINER, *prefix, name, "--help"], {}))
            if hasattr(command, "commands"):  # a group (typer vendors its own click)
                walk(command, [*prefix, name])

    walk(typer.main.get_command(app), [])
    completion = {"_TRAINER_COMPLETE": "complete_bash", "COMP_WORDS": "trainer tr", "COMP_CWORD": "1"}
    lines.append(("completion of `trainer tr<Tab>`", TRAINER, completion))
    return lines


def median_seconds(argv: list[str], environment: dict[str, str], repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of `repeats` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env={**os.environ, **environment}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="Runs per command; the median is shown.")
    parser.add_argument("--target", type=float, default=0.5,
                        help="CPU seconds above `python -c pass` allowed (CPU time holds under load).")
    options = parser.parse_args()
    lines = command_lines()
    baseline, baseline_cpu = median_seconds(lines[0][1], lines[0][2], options.repeats)
    print(f"{'command':40} {'wall s':>7} {'above python':>13} {'cpu s':>7} {'above python':>13}")
    print(f"{lines[0][0]:40} {baseline:7.3f} {'':>13} {baseline_cpu:7.3f}")
    slow = []
    for label, argv, environment in lines[1:]:
        seconds, cpu = median_seconds(argv, environment, options.repeats)
        above = seconds - baseline
        print(f"{label:40} {seconds:7.3f} {above:+13.3f} {cpu:7.3f} {cpu - baseline_cpu:+13.3f}")
        if cpu - baseline_cpu > options.target:
            slow.append(label)
    if slow:
        print(f"over the target of {options.target} CPU s above python: {', '.join(slow)}")
        return 1
    print(f"every command is within {options.target} CPU s of python -c pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
