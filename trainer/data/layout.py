"""Where a split's files are in a data root: `root/<kind>/<split>` (COCO-style, Ultralytics) or
`root/<split>/<kind>` (Roboflow and many exports), with the companion folder (labels, masks) beside."""

from __future__ import annotations

from pathlib import Path

from trainer.data.errors import DataError

SPLIT_ALIASES = {"val": ("val", "valid", "validation")}  # Roboflow writes `valid`


def split_folders(root: Path, split: str, *, kind: str, companion: str, fmt: str) -> tuple[Path, Path]:
    """(the `kind` folder, its `companion` folder) of `split` under `root`; the first layout whose
    `kind` folder exists wins. No such folder is a DataError naming the folders looked for."""
    tried = []
    for name in SPLIT_ALIASES.get(split, (split,)):
        for first, second in (((kind, name), (companion, name)), ((name, kind), (name, companion))):
            folder = root.joinpath(*first)
            tried.append(folder)
            if folder.is_dir():
                return folder, root.joinpath(*second)
    looked = ", ".join(f"{path}/" for path in tried[:2])
    raise DataError(
        f"{fmt}: image folder not found for split '{split}' in {root}: looked for {looked} "
        f"(or set images_dir and {companion}_dir)"
    )
