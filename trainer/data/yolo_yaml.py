"""An Ultralytics data yaml (`path`, `train`, `val`, `test`, `names` or `nc`), read as Ultralytics
does: `path` relative to the yaml's folder (`root`, when given, replaces it); a split entry is a
folder, a `.txt` list of image paths (relative lines relative to the list's folder), or a list of
those, relative to `path`; an entry starting with `../` that does not exist there is also tried
without it (Roboflow exports write `../train/images` beside a yaml in the data root). A yaml
holding only `names` is valid: the images are then found by folder layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.data.class_names import check_names
from trainer.data.errors import DataError
from trainer.data.image_folder import list_images
from trainer.data.reading import read_lines, read_yaml
from trainer.data.structure import expect_int, expect_list, expect_mapping, shown

SPLIT_KEYS = ("train", "val", "test")


@dataclass
class DataYaml:
    source: Path
    base: Path  # the folder split entries are relative to
    entries: dict[str, list[str]] = field(default_factory=dict)  # split -> folders / .txt lists
    names: list[str] | None = None


def _names(spec: dict, *, source: Path) -> list[str] | None:
    names = spec.get("names")
    if names is None:
        if spec.get("nc") is None:
            return None
        count = expect_int(spec["nc"], where=f"{source}: nc", minimum=1)
        return [f"class_{index}" for index in range(count)]  # Ultralytics' names when only nc is given
    if isinstance(names, dict):
        if set(names) != set(range(len(names))):
            raise DataError(f"{source}: names: expected a list or a mapping 0..K-1 -> name, got {shown(names)}")
        names = [names[index] for index in range(len(names))]
    names = expect_list(names, where=f"{source}: names")
    if not all(isinstance(name, (str, int, float)) and not isinstance(name, bool) for name in names):
        raise DataError(f"{source}: names: expected class names (strings), got {shown(names)}")
    return check_names([str(name) for name in names], source=f"{source}: names")


def _entries(spec: dict, *, source: Path) -> dict[str, list[str]]:
    entries = {}
    for split in SPLIT_KEYS:
        value = spec.get(split)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, str) and item for item in items):
            raise DataError(f"{source}: {split}: expected a folder, a .txt list or a list of those, got {shown(value)}")
        entries[split] = items
    return entries


def load_data_yaml(path: str | Path, *, root: str | Path | None = None) -> DataYaml:
    """The checked content of an Ultralytics data yaml."""
    source = Path(path)
    spec = read_yaml(source)
    spec = {} if spec is None else expect_mapping(spec, where=f"{source}: the file")
    given = spec.get("path")
    if given is not None and not isinstance(given, str):
        raise DataError(f"{source}: path: expected a folder, got {shown(given)}")
    base = Path(root) if root is not None else source.parent / (given or ".")
    return DataYaml(source=source, base=base, entries=_entries(spec, source=source), names=_names(spec, source=source))


def _target(item: str, *, base: Path) -> Path:
    target = Path(item) if Path(item).is_absolute() else base / item
    if not target.exists() and item.startswith("../") and (base / item[3:]).exists():
        return base / item[3:]
    return target


def images_from_entries(spec: DataYaml, split: str) -> list[Path]:
    """The image paths that the yaml's entry for `split` lists."""
    images: list[Path] = []
    for item in spec.entries[split]:
        target = _target(item, base=spec.base)
        if target.is_dir():
            images.extend(list_images(target))
        elif target.is_file() and target.suffix == ".txt":
            for line in read_lines(target):
                listed = Path(line)
                images.append(listed if listed.is_absolute() else target.parent / listed)
        else:
            raise DataError(f"{spec.source}: {split}: '{item}' -> {target} is neither a folder nor a .txt list")
    return images
