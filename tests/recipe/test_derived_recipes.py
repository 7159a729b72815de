"""Done-when of the merge rules: every shipped shapes recipe serves as the `base:` of a recipe for
one's own files. The derived recipe writes only a `data:` section in a real format of its task
(written by `trainer data shapes`), and `trainer check` passes on it."""

from __future__ import annotations

import math

import pytest
import yaml

from tests.conftest import ROOT
from trainer.commands.check import check_command
from trainer.commands.data_export import FORMATS_FOR_TASK, export_shapes

SHAPES_RECIPES = sorted((ROOT / "recipes").rglob("*_shapes*.yaml"))
CASES = [(path, fmt) for path in SHAPES_RECIPES for fmt in FORMATS_FOR_TASK[path.parent.name]]


@pytest.fixture(scope="module")
def data_sections(tmp_path_factory):
    """{format: the recipe data section of 8 exported images per split}, written once per module."""
    root = tmp_path_factory.mktemp("exported")
    return {fmt: export_shapes(task=task, fmt=fmt, out=root / fmt, num_images=8, image_size=32)
            for task, formats in FORMATS_FOR_TASK.items() for fmt in formats}


def test_every_task_has_shapes_recipes():
    assert {path.parent.name for path in SHAPES_RECIPES} == set(FORMATS_FOR_TASK)


@pytest.mark.slow
@pytest.mark.parametrize(("base", "fmt"), CASES, ids=[f"{path.stem}-{fmt}" for path, fmt in CASES])
def test_a_data_only_recipe_on_a_shipped_base_passes_check(tmp_path, data_sections, base, fmt):
    derived = tmp_path / "mine.yaml"
    derived.write_text(yaml.safe_dump({"base": str(base), "data": data_sections[fmt]}, sort_keys=False))
    before = sorted(tmp_path.rglob("*"))
    parts = check_command(recipes=[str(derived)], overrides=["training.batch_size=2"])
    assert parts and all(math.isfinite(value) for value in parts.values())
    assert sorted(tmp_path.rglob("*")) == before  # check writes nothing
