"""One guarded reader for every file a user hands in (recipes, annotation JSON, label files, data
yamls, class lists, checkpoints): size, encoding, nesting and YAML alias limits. Every problem is a
`FileReadError` whose message names the file (and the line where there is one); callers wrap it in
their own error type (RecipeError, DataError, CheckpointError). Imports nothing from trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

MiB = 1024 * 1024
TEXT_LIMIT = 16 * MiB  # recipes, label files, data yamls, class lists
JSON_LIMIT = 4096 * MiB  # annotation files (COCO train2017 instances: 448 MiB)
YAML_MAX_NODES = 100_000  # nodes after alias expansion: a recipe has hundreds; "billion laughs" has 10^9
YAML_MAX_DEPTH = 100


class FileReadError(ValueError):
    """A user file that cannot be read; `str()` is `path[:line]: problem`."""

    def __init__(self, path: str | Path, problem: str, *, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}:{line}: {problem}" if line is not None else f"{self.path}: {problem}")


def read_bytes(path: str | Path, *, max_bytes: int) -> bytes:
    """The file's bytes; missing, not a file, unreadable or larger than `max_bytes` is a FileReadError."""
    path = Path(path)
    try:
        if not path.is_file():
            raise FileReadError(path, "no such file" if not path.exists() else "not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise FileReadError(path, f"file is {size / MiB:.1f} MiB, more than the limit of {max_bytes / MiB:.0f} MiB")
        return path.read_bytes()
    except OSError as error:
        raise FileReadError(path, f"cannot read: {error.strerror or error}") from None


def decode_text(data: bytes, *, path: str | Path) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is accepted); binary, UTF-16 or other encodings are refused
    with the line of the first bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileReadError(path, "is UTF-16 text; save it as UTF-8")
    if b"\x00" in data[:8192]:
        raise FileReadError(path, "is a binary file, not UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problem = f"not UTF-8 text (byte 0x{data[error.start]:02x}); save it as UTF-8"
        raise FileReadError(path, problem, line=line) from None


def read_text(path: str | Path, *, max_bytes: int = TEXT_LIMIT) -> str:
    """A UTF-8 text file, guarded as `read_bytes` and `decode_text`."""
    return decode_text(read_bytes(path, max_bytes=max_bytes), path=path)


def read_lines(path: str | Path, *, max_bytes: int = TEXT_LIMIT) -> list[str]:
    """Non-empty, stripped lines of a text file (class lists, label files)."""
    return [line.strip() for line in read_text(path, max_bytes=max_bytes).splitlines() if line.strip()]


def load_json(path: str | Path, *, max_bytes: int = JSON_LIMIT) -> Any:
    """Parsed JSON; a syntax error names its line; nesting too deep for the parser is refused."""
    text = read_text(path, max_bytes=max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FileReadError(path, f"invalid JSON: {error.msg} (column {error.colno})", line=error.lineno) from None
    except RecursionError:
        raise FileReadError(path, "JSON nested too deeply to parse") from None


def compose_yaml(
    text: str, *, path: str | Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader,
    max_nodes: int = YAML_MAX_NODES, max_depth: int = YAML_MAX_DEPTH,
) -> yaml.Node | None:
    """The YAML node tree of one document, checked: syntax errors name their line; a self-referencing
    alias, more than `max_nodes` nodes after expanding aliases ("billion laughs") or nesting deeper than
    `max_depth` is refused before anything walks the tree."""
    deep_line = _flow_nesting_line(text, max_depth=max_depth)
    if deep_line is not None:  # the YAML scanner is quadratic in the nesting of brackets: refuse first
        raise FileReadError(path, f"YAML nested deeper than {max_depth} levels", line=deep_line)
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise FileReadError(path, f"invalid YAML: {error.problem or error.context}", line=line) from None
    except yaml.YAMLError as error:
        raise FileReadError(path, f"invalid YAML: {error}") from None
    except RecursionError:
        raise FileReadError(path, f"YAML nested deeper than {max_depth} levels") from None
    if node is not None:
        _check_node_tree(node, path=path, max_nodes=max_nodes, max_depth=max_depth)
    return node


def _flow_nesting_line(text: str, *, max_depth: int) -> int | None:
    """The line where `[` / `{` brackets (outside quotes and comments) nest deeper than `max_depth`, or None."""
    if text.count("[") + text.count("{") <= max_depth:
        return None
    depth, line, quote, comment = 0, 1, "", False
    for char in text:
        if char == "\n":
            line, comment = line + 1, False
        elif comment or (quote and char != quote):
            continue
        elif char == quote:
            quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#":
            comment = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
    return None


def _check_node_tree(root: yaml.Node, *, path: str | Path, max_nodes: int, max_depth: int) -> None:
    """Counts nodes as if aliases were expanded (memoised per node, so the count itself is cheap)."""
    expanded: dict[int, int] = {}
    active: set[int] = set()

    def count(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in expanded:
            return expanded[key]
        line = node.start_mark.line + 1
        if key in active:
            raise FileReadError(path, "an alias refers to the mapping or list that contains it", line=line)
        if depth > max_depth:
            raise FileReadError(path, f"YAML nested deeper than {max_depth} levels", line=line)
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total += count(child, depth + 1)
            if total > max_nodes:
                raise FileReadError(
                    path, f"YAML expands to more than {max_nodes} values (aliases repeated too often)", line=line
                )
        active.discard(key)
        expanded[key] = total
        return total

    count(root, 0)


def load_yaml(path: str | Path, *, max_bytes: int = TEXT_LIMIT) -> Any:
    """A guarded plain YAML file (data yamls): `read_text` + `compose_yaml` + SafeLoader construction."""
    text = read_text(path, max_bytes=max_bytes)
    if compose_yaml(text, path=path) is None:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:  # e.g. an unknown tag, a list as a mapping key
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise FileReadError(path, f"invalid YAML: {error.problem or error.context}", line=line) from None
    except (yaml.YAMLError, ValueError, TypeError) as error:  # e.g. `!!int zz`, a date 2001-13-45
        raise FileReadError(path, f"invalid YAML value: {error}") from None


def load_torch(path: str | Path, *, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """A torch file (checkpoint or state dict) with `weights_only=True`: tensors and plain containers,
    never arbitrary pickled objects. Any failure is a FileReadError in plain words (no ANSI codes)."""
    import re

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileReadError(path, "no such file" if not path.exists() else "not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises several types for a bad file; all mean "cannot read it"
        first_line = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()[0] if str(error) else ""
        raise FileReadError(path, f"cannot read as a torch checkpoint: {type(error).__name__}: {first_line}") from None
