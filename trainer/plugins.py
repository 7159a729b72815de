"""Import the user modules a recipe names in `imports:` (they register custom components).

Besides the installed packages, a module is searched in the folder of the recipe file that names it
and then in the working folder (both appended to `sys.path`, so installed packages keep precedence).
Any exception while importing, not only ImportError, becomes one problem in words that names the
module and the line of the plugin's own code where it happened.
"""

from __future__ import annotations

import importlib
import re
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
