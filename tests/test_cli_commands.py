"""The small commands: `list`, `show --sources`, and the output files of `new`, `schema` and `docs`
(never overwritten without --force; missing parent folders created)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_classification_recipe
from trainer.components import load_builtin_components
from trainer.registry import REGISTRIES


def test_list_shows_every_kind_that_has_entries_and_no_empty_one(cli):
    load_builtin_components()
    output = cli("list").output
    rows = [line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│")]
    kinds = [row for row in rows if row]
    assert kinds == [name for name, registry in REGISTRIES.items() if len(registry)]
    assert "metrics" not in kinds


def test_show_sources_names_the_file_line_and_the_override(tmp_path, write_recipe, cli):
    path = write_recipe(tiny_classification_recipe())
    result = cli("show", path, "training.epochs=3", "--sources")
    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0]: line for line in result.output.splitlines()}
    assert "command-line override 'training.epochs=3'" in lines["training.epochs"]
    assert f"{path}:" in lines["model.architecture.backbone.name"]
    assert lines["training.grad_clip"].endswith("# default")


@pytest.mark.parametrize("command", [["new", "--task", "classification"], ["schema"], ["docs"]],
                         ids=lambda command: command[0])
def test_output_files_are_new_unless_forced(command, tmp_path, cli):
    out = tmp_path / "made" / "here" / "file.txt"  # missing parent folders are created
    first = cli(*command, "--out", out)
    assert first.exit_code == 0, first.output
    written = out.read_text()
    out.write_text("mine\n")
    refused = cli(*command, "--out", out)
    assert refused.exit_code == 2 and "exists" in refused.output and "--force" in refused.output
    assert out.read_text() == "mine\n"
    forced = cli(*command, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_text() == written
    assert [path.name for path in out.parent.iterdir()] == ["file.txt"]  # no temporary file left


def test_an_output_under_a_file_is_refused_before_the_work(tmp_path, cli):
    (tmp_path / "a_file").write_text("x\n")
    result = cli("schema", "--out", tmp_path / "a_file" / "schema.json")
    assert result.exit_code == 2 and f"{tmp_path / 'a_file'} is a file" in result.output
    assert json.loads(cli("schema").stdout)  # printing still works
