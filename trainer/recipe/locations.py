"""Where each key of a merged recipe was written: 'file:line:col' or "command-line override 'k=v'"."""

from __future__ import annotations

from trainer.recipe.errors import KeyPath

OVERRIDE_PREFIX = "command-line override"


class Locations:
    """Key path -> place; a replaced or removed value forgets the places of what was under it."""

    def __init__(self) -> None:
        self._where: dict[KeyPath, str] = {}

    def set(self, path: KeyPath, where: str) -> None:
        self._where[tuple(path)] = where

    def drop_under(self, path: KeyPath) -> None:
        """Forget the places strictly below `path`."""
        path = tuple(path)
        for key in [key for key in self._where if key[: len(path)] == path and len(key) > len(path)]:
            del self._where[key]

    def update(self, other: "Locations") -> None:
        self._where.update(other._where)

    def exact(self, path: KeyPath) -> str | None:
        """The place `path` itself was written, or None."""
        return self._where.get(tuple(path))

    def find(self, path: KeyPath) -> str | None:
        """The location of `path`, or of its closest written ancestor, or else the recipe files."""
        path = tuple(path)
        while path:
            if path in self._where:
                return self._where[path]
            path = path[:-1]
        return self._where.get(())

    def blame(self, path: KeyPath) -> str | None:
        """The place to name for a problem with the whole value at `path` (a data split, say): a
        command-line override that set it or anything under it, else `find(path)`."""
        path = tuple(path)
        overrides = [where for key, where in self._where.items()
                     if key[: len(path)] == path and where.startswith(OVERRIDE_PREFIX)]
        return overrides[-1] if overrides else self.find(path)
