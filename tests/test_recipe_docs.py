"""docs/recipes.md is generated from the schema, the field help texts and the registries, and is
kept up to date: regenerate with `trainer docs --out docs/recipes.md --force`."""

from __future__ import annotations

from tests.conftest import ROOT
from trainer.commands.docs import all_field_paths, recipe_docs
from trainer.components import load_builtin_components
from trainer.recipe.field_docs import COMPONENT_HELP, FIELD_HELP
from trainer.registry import REGISTRIES


def test_every_recipe_field_has_a_help_text():
    paths = all_field_paths()
    missing = [path for path in paths if not FIELD_HELP.get(path, "").strip()]
    assert not missing, f"add help texts to trainer/recipe/field_docs.py for: {missing}"
    stale = sorted(set(FIELD_HELP) - set(paths))
    assert not stale, f"field_docs.py describes fields the schema does not have: {stale}"


def test_component_help_names_registered_components():
    load_builtin_components()
    kinds = {registry.kind: registry for registry in REGISTRIES.values()}
    for key in COMPONENT_HELP:
        kind, name = key.split("/")
        assert name in kinds[kind], key


def test_docs_are_up_to_date():
    text = recipe_docs()
    current = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert current == text, "docs/recipes.md is out of date; run: trainer docs --out docs/recipes.md --force"
    for path in all_field_paths():
        assert f"`{path}`" in text
    load_builtin_components()
    for key, registry in REGISTRIES.items():
        for name in registry.names():
            if registry.get(name).__module__.startswith("trainer."):
                assert f"| `{name}` |" in text, (key, name)
    assert "--install-completion" in text


def test_docs_command(cli, tmp_path):
    result = cli("docs", "--check")
    assert result.exit_code == 0, result.output
    stale = tmp_path / "recipes.md"
    stale.write_text("old\n")
    result = cli("docs", "--check", "--out", stale)
    assert result.exit_code == 1 and "out of date" in result.output
    assert cli("docs", "--out", stale).exit_code == 2  # an existing file is kept ...
    assert cli("docs", "--out", stale, "--force").exit_code == 0  # ... unless --force
    assert cli("docs", "--check", "--out", stale).exit_code == 0
