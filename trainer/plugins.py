"""Import the user modules a recipe names in `imports:` (they register custom components).

Besides the installed packages, a module is searched in the folder of the recipe file that names it
and then in the working folder (both appended to `sys.path`, so installed packages keep precedence).
A run keeps a copy of each such module beside its recipe.yaml, so that resume, eval, predict and
export of the run find it from any folder.
Any exception while importing, not only ImportError, becomes one problem in words that names the
module and the line of the plugin's own code where it happened.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
import sysconfig
import traceback
from collections.abc import Sequence
from importlib.metadata import EntryPoint
from pathlib import Path

PACKAGE_FOLDER = Path(__file__).resolve().parent
LIBRARY_FOLDERS = tuple({Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "purelib", "platlib")})


def plugin_folders(where: str | None) -> list[Path]:
    """The recipe file's folder (from a 'file:line:col' location; none for an override), then the working folder."""
    folders = []
    match = re.fullmatch(r"(.+):\d+:\d+", where or "")
    if match is not None and Path(match.group(1)).is_file():
        folders.append(Path(match.group(1)).resolve().parent)
    folders.append(Path.cwd())
    return folders


def _add_to_import_path(folders: Sequence[Path]) -> None:
    present = {str(Path(entry or ".").resolve()) for entry in sys.path}
    for folder in folders:
        if str(folder.resolve()) not in present:
            sys.path.append(str(folder.resolve()))
            present.add(str(folder.resolve()))
    importlib.invalidate_caches()  # a plugin file written after its folder was first searched


def _is_user_code(filename: str) -> bool:
    if filename.startswith("<"):  # importlib's frozen frames, code run from strings
        return False
    path = Path(filename).resolve()
    return not any(path.is_relative_to(folder) for folder in (PACKAGE_FOLDER, *LIBRARY_FOLDERS))


def error_place(error: BaseException) -> str | None:
    """'file:line' of the plugin code where `error` happened: the deepest frame outside importlib, this
    package and the installed libraries (for a SyntaxError, the bad line itself)."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}"
    frames = traceback.extract_tb(error.__traceback__)
    user = [frame for frame in frames if _is_user_code(frame.filename)]
    chosen = user[-1] if user else next((f for f in reversed(frames) if not f.filename.startswith("<")), None)
    return f"{chosen.filename}:{chosen.lineno}" if chosen is not None else None


def _problem(module: str, error: Exception) -> str:
    text = error.msg if isinstance(error, SyntaxError) else str(error)
    place = error_place(error)
    where = f"{place}: " if place else ""
    return f"cannot import '{module}': {where}{type(error).__name__}: {text}"


def load_entry_point(entry_point: EntryPoint) -> str | None:
    """Load one plugin of the `trainer.plugins` entry-point group; the problem in words, or None."""
    try:
        entry_point.load()
    except Exception as error:  # as for `imports:`, anything a plugin raises becomes one message
        return f"plugin '{entry_point.name}' of the trainer.plugins entry points: {_problem(entry_point.value, error)}"
    return None


def import_plugin(module: str, *, folders: Sequence[Path]) -> str | None:
    """Import `module` (searching `folders` after the installed packages); the problem in words, or None."""
    _add_to_import_path(folders)
    try:
        importlib.import_module(module)
    except Exception as error:  # a plugin may raise anything; each becomes one message naming the module
        missing = getattr(error, "name", None)
        if isinstance(error, ModuleNotFoundError) and missing and (module + ".").startswith(missing + "."):
            searched = ", ".join(str(folder) for folder in folders)
            return f"cannot import '{module}': no module named '{missing}' (searched installed packages, {searched})"
        return _problem(module, error)
    return None


SNAPSHOT_LIMIT_BYTES = 5 * 1024 * 1024


def _module_files(module: str) -> tuple[Path, list[Path]] | None:
    """The folder on the import path that `module` (imported) was found in, and its user-code .py files:
    the __init__.py of each package on the way, then the module's file or its package's whole tree."""
    parts = module.split(".")
    top = sys.modules.get(parts[0])
    locations = getattr(getattr(top, "__spec__", None), "submodule_search_locations", None)
    top_file = getattr(top, "__file__", None)
    if locations:
        root = Path(next(iter(locations))).resolve().parent
    elif top_file:
        root = Path(top_file).resolve().parent
    else:
        return None
    files = []
    for depth in range(1, len(parts) + 1):
        file = getattr(sys.modules.get(".".join(parts[:depth])), "__file__", None)
        if file is None or not _is_user_code(file):
            continue
        path = Path(file).resolve()
        if depth == len(parts) and path.name == "__init__.py":
            files += sorted(p for p in path.parent.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            files.append(path)
    return (root, files) if files and all(path.is_relative_to(root) for path in files) else None


def copy_plugins_into_run(modules: Sequence[str], *, run_dir: Path) -> list[str]:
    """Copy the user code of each imported `imports:` module (see `_module_files`) into `run_dir`, the
    folder of the run's recipe.yaml, where `imports:` then finds it; installed modules are not copied
    and a file already there is kept. Returns what was done, in words."""
    notes = []
    for module in modules:
        found = _module_files(module)
        if found is None or found[0] == run_dir.resolve():
            continue
        root, files = found
        try:
            if sum(path.stat().st_size for path in files) > SNAPSHOT_LIMIT_BYTES:
                notes.append(f"plugin '{module}' is over {SNAPSHOT_LIMIT_BYTES // 2**20} MB of Python files and was "
                             f"not copied into {run_dir}: resume or evaluate the run where it can be imported")
                continue
            for path in files:
                target = run_dir / path.relative_to(root)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
        except OSError as error:  # the run goes on; only resuming from elsewhere needs the copy
            notes.append(f"plugin '{module}' could not be copied into {run_dir}: {error}")
            continue
        notes.append(f"plugin '{module}' copied from {root} into {run_dir}")
    return notes
