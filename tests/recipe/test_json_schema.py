"""The generated JSON Schema: up to date in docs/, accepts every shipped recipe, rejects typos."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT
from trainer.components import load_builtin_components
from trainer.recipe.json_schema import recipe_json_schema, schema_text

SCHEMA_FILE = ROOT / "docs" / "recipe.schema.json"
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
HEADER = "# yaml-language-server: $schema=../../docs/recipe.schema.json"
VALID = {
    "task": "detection",
    "data": {"format": "shapes", "train": {"num_images": 8}, "val": {"num_images": 8, "image_size": 64}},
    "augmentation": {"train": [{"name": "hflip", "p": 0.5}, {"name": "normalize"}], "val": [{"name": "normalize"}]},
    "model": {
        "architecture": {"backbone": {"name": "cspdarknet_nano"}, "neck": {"name": "pafpn"}, "head": None},
        "losses": [{"criterion": "yolox_loss", "weight": {"iou": 1.0}, "l1_activate_epoch": 5}],
    },
    "training": {"epochs": 3, "optimizer": {"name": "adamw", "lr": 1e-3}, "scheduler": {"name": "cosine"}},
}


@pytest.fixture(scope="module")
def validator():
    load_builtin_components()
    schema = recipe_json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator, recipe: dict) -> list[str]:
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(recipe)]


def changed(path: str, value) -> dict:
    recipe = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = recipe
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return recipe


def test_docs_schema_is_up_to_date():
    load_builtin_components()
    assert SCHEMA_FILE.is_file(), "run: trainer schema --out docs/recipe.schema.json"
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(schema_text()), (
        "docs/recipe.schema.json is out of date; regenerate it: trainer schema --out docs/recipe.schema.json --force"
    )


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_recipe_matches_the_schema(validator, path):
    assert path.read_text().splitlines()[0] == HEADER
    assert errors(validator, yaml.safe_load(path.read_text())) == []


def test_valid_recipe_and_partial_files(validator):
    assert errors(validator, VALID) == []
    # a file on top of a base: only what changes, no component name (it comes from the base)
    assert errors(validator, {"base": "../detection/x.yaml", "training": {"optimizer": {"lr": 0.1}}}) == []
    assert errors(validator, {"base": ["a.yaml", "b.yaml"], "data": {"train": {"root": "x"}}}) == []


@pytest.mark.parametrize("path, value, expected", [
    ("training.epoch", 3, "Additional properties are not allowed ('epoch' was unexpected)"),
    ("model.losses.0.criterion", "focal", "'focal' is not one of"),
    ("model.losses.0.l1_activate_epochs", 3, "('l1_activate_epochs' was unexpected)"),
    ("model.losses.0.weight", "heavy", "model.losses.0.weight:"),
    ("model.architecture.neck.extra_levels", "p6p7", "('extra_levels' was unexpected)"),
    ("model.architecture.backbone.name", "resnet_18", "'resnet_18' is not one of"),
    ("data.format", "cocoo", "'cocoo' is not one of"),
    ("data.train.num_imgs", 8, "('num_imgs' was unexpected)"),
    ("augmentation.train.0.name", "hfilp", "'hfilp' is not one of"),
    ("augmentation.train.0", {"name": "resize"}, "'size' is a required property"),
    ("training.optimizer.momentm", 0.9, "('momentm' was unexpected)"),
    ("training.scheduler.name", "cosin", "'cosin' is not one of"),
    ("training.epochs", 0, "0 is less than the minimum of 1"),
    ("training.batch_size", "8", "'8' is not of type 'integer'"),
    ("training.amp", "fp8", "'fp8' is not one of"),
    ("task", "detect", "'detect' is not one of"),
    # the constraints declared next to each component and in the schema dataclasses
    ("training.optimizer.lr", -0.1, "-0.1 is less than or equal to the minimum of 0"),
    ("training.optimizer.betas", [0.9, 1.5], "1.5 is greater than or equal to the maximum of 1"),
    ("model.losses.0.weight", {"iou": -1.0}, "is not valid under any of the given schemas"),
    ("model.losses.0.box_weight", -5, "-5 is less than the minimum of 0"),
    ("model.postprocess", {"nms_iou": 1.5}, "1.5 is greater than the maximum of 1"),
    ("environment", {"seed": 2**64}, "is greater than the maximum of 18446744073709551615"),
])
def test_schema_rejects(validator, path, value, expected):
    found = errors(validator, changed(path, value))
    assert any(expected in message for message in found), found


def test_loss_entries_need_a_criterion(validator):
    found = errors(validator, changed("model.losses", [{"weight": 2.0}]))
    assert any("'criterion' is a required property" in message for message in found), found


def test_component_options_carry_types_and_defaults(validator):
    schema = validator.schema
    yolox = next(branch["then"] for branch in schema["definitions"]["loss"]["allOf"]
                 if branch["if"].get("properties", {}).get("criterion", {}).get("const") == "yolox_loss")
    assert yolox["properties"]["l1_activate_epoch"] == {"type": ["integer", "null"], "minimum": 0, "default": None}
    neck = schema["definitions"]["neck"]
    assert "in_channels" not in json.dumps(neck)  # filled in by the trainer, not the recipe
    assert schema["properties"]["base"]


def test_schema_command(cli, tmp_path):
    printed = cli("schema")
    assert printed.exit_code == 0, printed.stderr
    assert json.loads(printed.stdout) == json.loads(schema_text())
    out = tmp_path / "recipe.schema.json"
    assert cli("schema", "--out", out).exit_code == 0
    assert json.loads(out.read_text()) == json.loads(printed.stdout)
    missing = cli("schema", "--import", "no_such_plugin_module")
    assert missing.exit_code == 2 and "cannot import 'no_such_plugin_module'" in missing.stderr
