"""The package's layering, read from the import statements of every module in trainer/ (type-only
imports under `if TYPE_CHECKING:` do not count):

- the base (files, registry, constants, constraints, ops, head_choice, data/, models/, losses/,
  metrics/) imports nothing from
  the engine, the tasks, the commands, the recipe or the CLI;
- a command never imports another command.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trainer"
BASE = ("trainer.files", "trainer.registry", "trainer.constants", "trainer.constraints", "trainer.ops",
        "trainer.head_choice", "trainer.data", "trainer.models", "trainer.losses", "trainer.metrics")
ABOVE_BASE = ("trainer.engine", "trainer.tasks", "trainer.commands", "trainer.recipe", "trainer.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, `from a import b` giving both a and a.b."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", [p for p in FILES if _within(module_name(p), BASE)], ids=module_name)
def test_base_modules_import_nothing_above_them(path):
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
             for line, module in imported_modules(path) if _within(module, ABOVE_BASE)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", [p for p in FILES if _within(module_name(p), ("trainer.commands",))],
                         ids=module_name)
def test_commands_never_import_other_commands(path):
    own = module_name(path)
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
             for line, module in imported_modules(path)
             if _within(module, ("trainer.commands",)) and module != "trainer.commands" and not _within(module, (own,))]
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trainer.engine\n"
                      "def f():\n    from trainer.cli import app\n")
    assert (5, "trainer.cli.app") in imported_modules(source)
    assert not any(module == "trainer.engine" for _, module in imported_modules(source))
