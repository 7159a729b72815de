"""Recipes and their bases are read through the guarded reader: a file that cannot be read is one
recipe error naming the file (and line), exit code 2, quickly; so is any random or mutated input."""

from __future__ import annotations

import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from trainer.components import load_builtin_components
from trainer.recipe import RecipeError, load_recipe

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)
BAD_FILES = {
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "utf16": "task: classification\n".encode("utf-16"),
    "latin1": "task: classification\n# caf\xe9\n".encode("latin-1"),
    "self-alias": b"data: &d\n  train: *d\n",
    "brackets": b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n",
    "billion-laughs": LAUGHS.encode(),
    "bad-yaml": b"task: classification\ndata: {format: shapes\n",
    "unhashable-key": b"? [a, b]\n: 1\n",
    "bad-date": b"task: 2020-13-45\n",
}
EXPECTED = {
    "binary": "binary file", "utf16": "UTF-16", "latin1": ":2: not UTF-8", "self-alias": "alias",
    "brackets": "nested deeper", "billion-laughs": "expands to more than", "bad-yaml": "invalid YAML",
    "unhashable-key": "invalid YAML", "bad-date": "invalid YAML",
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_unreadable_recipe_is_one_error_naming_the_file(tmp_path, cli, case):
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(BAD_FILES[case])
    result = cli("show", path)
    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr and EXPECTED[case] in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", BAD_FILES)
def test_unreadable_recipe_is_refused_quickly(tmp_path, case):
    load_builtin_components()
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(BAD_FILES[case])
    start = time.perf_counter()
    with pytest.raises(RecipeError, match=EXPECTED[case]):
        load_recipe([path])
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("case", ["binary", "billion-laughs"])
def test_an_unreadable_base_is_named(tmp_path, case):
    (tmp_path / "base.yaml").write_bytes(BAD_FILES[case])
    (tmp_path / "child.yaml").write_text("base: base.yaml\n")
    with pytest.raises(RecipeError, match=f"{tmp_path / 'base.yaml'}.*{EXPECTED[case]}"):
        load_recipe([tmp_path / "child.yaml"])


def test_a_folder_as_recipe(tmp_path):
    with pytest.raises(RecipeError, match="not a file"):
        load_recipe([tmp_path])


SHIPPED = (ROOT / "recipes" / "detection" / "yolox_nano_shapes.yaml").read_text()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_recipes_give_a_recipe_error_or_load(tmp_path, data):
    """Random bytes spliced into a shipped recipe: it loads, or it is a RecipeError; nothing else escapes."""
    start = data.draw(st.integers(0, len(SHIPPED)))
    end = data.draw(st.integers(start, min(len(SHIPPED), start + 40)))
    inserted = data.draw(st.binary(max_size=20) | st.sampled_from([b"~", b": ", b"- ", b"*x", b"&x ", b"{", b"]"]))
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(SHIPPED[:start].encode() + inserted + SHIPPED[end:].encode())
    try:
        load_recipe([path])
    except RecipeError as error:
        assert str(error).startswith("recipe error")


KEYS = st.sampled_from(["training", "epochs", "optimizer", "name", "lr", "model", "losses", "0", "3", "[1]",
                        "data", "format", "train", "augmentation", "weight", "criterion", "x", ""])
VALUES = st.sampled_from(["3", "~", "-1", ".nan", "[1, 2]", "{a: 1}", "{name: adam}", "image_folder", "''", "[",
                          "&a [*a]", "cross_entropy", "1e999"])


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(KEYS, min_size=1, max_size=4), value=VALUES)
def test_random_overrides_give_a_recipe_error_or_load(keys, value):
    """Any `key.path=value` on the command line: it applies, or it is a RecipeError naming the override."""
    override = ".".join(keys) + "=" + value
    try:
        load_recipe([ROOT / "recipes" / "classification" / "resnet18_shapes.yaml"], [override])
    except RecipeError as error:
        assert "override" in str(error) or "recipe error" in str(error)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.sampled_from(["", "x", "sgd"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["name", "criterion", "a"]), inner,
                                                                max_size=3),
    max_leaves=6,
)
PLACES = [("task",), ("data",), ("data", "format"), ("data", "train"), ("augmentation", "train"),
          ("augmentation", "train", 0), ("model", "architecture"), ("model", "architecture", "backbone"),
          ("model", "losses"), ("model", "losses", 0), ("model", "losses", 0, "weight"), ("training",),
          ("training", "optimizer"), ("training", "scheduler"), ("logging",), ("environment", "seed"), ("imports",)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(PLACES), value=JSON_VALUES)
def test_any_value_anywhere_gives_a_recipe_error_or_loads(tmp_path, place, value):
    """A structurally wrong value at any place of a shipped recipe is a RecipeError, never a crash."""
    recipe = yaml.safe_load((ROOT / "recipes" / "classification" / "resnet18_shapes.yaml").read_text())
    node = recipe
    for key in place[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[place[-1]] = value
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    try:
        load_recipe([path])
    except RecipeError as error:
        assert str(error).startswith("recipe error")
