"""Recipe errors: each names the place (file:line:col or the command-line override), the key path
and the problem. Several problems are reported together in one error."""

from __future__ import annotations

from dataclasses import dataclass

KeyPath = tuple  # of str keys and int list indices


def format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<recipe>"


@dataclass(frozen=True)
class RecipeIssue:
    path: KeyPath
    message: str
    where: str | None = None  # "recipe.yaml:7:3" or "command-line override 'a.b=1'"

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        if not self.path:  # a problem with the whole recipe or a command-line option
            return f"{prefix}{self.message}"
        return f"{prefix}{format_path(self.path)}: {self.message}"


class RecipeError(Exception):
    """One or more problems in a recipe; exit code 2, no traceback."""

    def __init__(self, issues: list[RecipeIssue]) -> None:
        self.issues = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.issues) == 1:
            return f"recipe error: {self.issues[0]}"
        lines = [f"recipe error: {len(self.issues)} problems"]
        lines += [f"  - {issue}" for issue in self.issues]
        return "\n".join(lines)
