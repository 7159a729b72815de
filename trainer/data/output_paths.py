"""Files written under an output folder (`data convert`, `data shapes`): every path built from data
(a COCO `file_name`, a split name) must stay inside its folder (no absolute paths, no `..` or
symlink leading out), and nothing that exists is overwritten without `force`."""

from __future__ import annotations

import shutil
from pathlib import Path

from trainer.data.errors import DataError


def inside(folder: Path, relative: str | Path, *, source: str = "") -> Path:
    """`folder / relative`, refused when it would lie outside `folder` (after resolving `..` and
    existing symlinks); `source` names where `relative` came from, for the message."""
    folder = Path(folder)
    from_where = f"{source}: " if source else ""
    if Path(relative).is_absolute():
        raise DataError(f"{from_where}'{relative}' is an absolute path; files are written only inside {folder}")
    target = folder / relative
    root, resolved = folder.resolve(), target.resolve()
    if resolved != root and root not in resolved.parents:
        raise DataError(f"{from_where}'{relative}' leads outside {folder} (to {resolved}); not writing there")
    return target


def prepare_output(path: Path, *, folder: bool, force: bool) -> None:
    """Refuse an output that exists (a non-empty folder, or a file) unless `force`; a file where a
    folder is wanted, or a folder where a file is wanted, is refused even with `force`."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise DataError(f"{path} is a file, not a folder; give a new or empty folder")
    if not folder and path.is_dir():
        raise DataError(f"{path} is a folder; give the path of the file to write")
    if force:
        if folder and path.is_dir():
            _refuse_folder_links_out(path)
        return
    if folder and path.exists() and any(path.iterdir()):
        raise DataError(f"{path} exists and is not empty; not overwriting it (add --force to write into it)")
    if not folder and path.exists():
        raise DataError(f"{path} exists; not overwriting it (add --force to replace it)")


def _refuse_folder_links_out(folder: Path) -> None:
    """An existing output folder written into with `force` must not hold a link to a folder outside
    it (writes would go through it); links to files are harmless: they are replaced, not followed."""
    root = folder.resolve()
    for entry in folder.rglob("*"):
        if entry.is_symlink() and entry.is_dir():
            resolved = entry.resolve()
            if resolved != root and root not in resolved.parents:
                raise DataError(f"{entry} links to {resolved}, outside {folder}; not writing through it")


def _fresh(target: Path, *, force: bool) -> Path:
    """Make room for a new file at `target` (never writing through an existing link)."""
    if target.is_symlink() or target.exists():
        if not force:
            raise DataError(f"{target} exists; not overwriting it (add --force to replace it)")
        if target.is_dir() and not target.is_symlink():
            raise DataError(f"{target} is a folder; not replacing it with a file")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def write_bytes(target: Path, data: bytes, *, force: bool) -> None:
    """A new file at `target` (replacing an existing one only with `force`)."""
    with open(_fresh(target, force=force), "xb") as handle:
        handle.write(data)


def write_text(target: Path, text: str, *, force: bool) -> None:
    """A new UTF-8 text file at `target` (replacing an existing one only with `force`)."""
    write_bytes(target, text.encode("utf-8"), force=force)


def place_file(source: Path, target: Path, *, force: bool, symlink: bool = False) -> None:
    """A copy of `source` at `target` (or a symbolic link to it)."""
    _fresh(target, force=force)
    if symlink:
        target.symlink_to(Path(source).resolve())
    else:
        shutil.copyfile(source, target)
        shutil.copystat(source, target)
