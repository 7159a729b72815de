"""A COCO instances file, checked by structure: every field the trainer uses has its type checked,
and every problem names the file and the entry (`instances.json: annotations[17].bbox: ...`).
All problems of the file are reported together. Used by the `coco` loader and `data convert`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.data.errors import DataError
from trainer.data.reading import read_json
from trainer.data.structure import (
    Problems,
    expect_int,
    expect_list,
    expect_mapping,
    expect_number,
    expect_numbers,
    expect_str,
    shown,
)


@dataclass(frozen=True)
class CocoAnnotation:
    image_index: int  # position in CocoContent.images
    label: int  # contiguous class index
    bbox: list[float]  # [x, y, w, h] pixels, as in the file
    area: float
    iscrowd: bool


@dataclass
class CocoContent:
    class_names: list[str]
    images: list[dict]  # {"id", "file_name", "width", "height"}
    annotations: list[CocoAnnotation] = field(default_factory=list)


def _categories(value: Any, *, where: str, problems: Problems) -> dict[int, str]:
    found: dict[int, str] = {}
    for index, entry in enumerate(expect_list(value, where=f"{where}categories")):
        here = f"{where}categories[{index}]"
        try:
            entry = expect_mapping(entry, where=here)
            category_id = expect_int(entry.get("id"), where=f"{here}.id")
            name = expect_str(entry.get("name"), where=f"{here}.name")
        except DataError as error:
            problems.add(error)
            continue
        if category_id in found:
            problems.add(f"{here}.id: category id {category_id} appears twice")
        found[category_id] = name
    return found


def _image(entry: Any, *, here: str) -> dict:
    entry = expect_mapping(entry, where=here)
    return {
        "id": expect_int(entry.get("id"), where=f"{here}.id"),
        "file_name": expect_str(entry.get("file_name"), where=f"{here}.file_name"),
        "width": expect_int(entry.get("width"), where=f"{here}.width", minimum=1),
        "height": expect_int(entry.get("height"), where=f"{here}.height", minimum=1),
    }


def _images(value: Any, *, where: str, problems: Problems) -> tuple[list[dict], dict[int, int]]:
    images: list[dict] = []
    index_of: dict[int, int] = {}
    for index, entry in enumerate(expect_list(value, where=f"{where}images")):
        try:
            image = _image(entry, here=f"{where}images[{index}]")
        except DataError as error:
            problems.add(error)
            continue
        if image["id"] in index_of:
            problems.add(f"{where}images[{index}].id: image id {image['id']} appears twice")
            continue
        index_of[image["id"]] = len(images)
        images.append(image)
    return images, index_of


def _annotation(entry: Any, *, here: str, index_of: dict[int, int], label_of: dict[int, int]) -> CocoAnnotation:
    entry = expect_mapping(entry, where=here)
    ident = f" (annotation {shown(entry['id'])})" if "id" in entry else ""
    category_id = expect_int(entry.get("category_id"), where=f"{here}.category_id")
    if category_id not in label_of:
        raise DataError(f"{here}.category_id: {category_id} is not the id of any category{ident}")
    image_id = expect_int(entry.get("image_id"), where=f"{here}.image_id")
    if image_id not in index_of:
        raise DataError(f"{here}.image_id: {image_id} is not the id of any image{ident}")
    bbox = expect_numbers(entry.get("bbox"), count=4, where=f"{here}.bbox")
    area = entry.get("area")
    area = bbox[2] * bbox[3] if area is None else expect_number(area, where=f"{here}.area", minimum=0)
    crowd = expect_int(entry.get("iscrowd", 0), where=f"{here}.iscrowd", minimum=0)
    return CocoAnnotation(image_index=index_of[image_id], label=label_of[category_id], bbox=bbox, area=area,
                          iscrowd=bool(crowd))


def _labels(categories: dict[int, str], class_names: list[str] | None, *, where: str) -> tuple[list[str], dict]:
    ordered = sorted(categories)
    if class_names is None:
        return [categories[i] for i in ordered], {category_id: index for index, category_id in enumerate(ordered)}
    problems = Problems()
    for category_id in ordered:
        if categories[category_id] not in class_names:
            problems.add(f"{where}category {category_id} '{categories[category_id]}' is not in class_names "
                         f"{class_names}")
    problems.raise_if_any()
    return list(class_names), {i: class_names.index(categories[i]) for i in ordered}


def parse_coco(data: Any, *, path: str | Path, class_names: list[str] | None = None) -> CocoContent:
    """The checked content of a parsed COCO instances file (category ids -> class indices in order of
    id, or by name into `class_names` when given)."""
    where = f"{path}: "
    top = expect_mapping(data, where=f"{path}: the file")
    if "images" not in top or "categories" not in top:
        raise DataError(f"{path}: not a COCO instances file (needs 'images' and 'categories' lists)")
    problems = Problems()
    categories = _categories(top["categories"], where=where, problems=problems)
    images, index_of = _images(top["images"], where=where, problems=problems)
    problems.raise_if_any()
    if not categories:
        raise DataError(f"{path}: categories: the list is empty (no classes)")
    names, label_of = _labels(categories, class_names, where=where)
    annotations = []
    for index, entry in enumerate(expect_list(top.get("annotations", []), where=f"{where}annotations")):
        try:
            annotations.append(_annotation(entry, here=f"{where}annotations[{index}]", index_of=index_of,
                                           label_of=label_of))
        except DataError as error:
            problems.add(error)
    problems.raise_if_any()
    return CocoContent(class_names=names, images=images, annotations=annotations)


def load_coco(path: str | Path, *, class_names: list[str] | None = None) -> CocoContent:
    """Read and check a COCO instances file."""
    return parse_coco(read_json(path), path=path, class_names=class_names)
