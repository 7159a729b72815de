"""Run directories: `<output_dir>/<name>/`, never silently overwritten."""

from __future__ import annotations

from pathlib import Path


def create_run_dir(*, output_dir: str | Path, name: str) -> tuple[Path, str | None]:
    """Make a new run directory; if `name` is taken, use `name-2`, `name-3`, ... and say so."""
    root = Path(output_dir)
    candidate = root / name
    suffix = 2
    while candidate.exists():
        candidate = root / f"{name}-{suffix}"
        suffix += 1
    candidate.mkdir(parents=True)
    note = None if candidate.name == name else f"{root / name} exists; this run writes to {candidate}"
    (candidate / "checkpoints").mkdir()
    return candidate, note
