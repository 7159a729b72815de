"""The recipe package reads the registries' declarations, never the component packages: importing
it pulls in neither torch nor trainer.models / data / losses / engine (the CLI stays fast)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "trainer.models", "trainer.data", "trainer.losses", "trainer.engine", "trainer.commands")


def test_recipe_modules_import_no_components():
    code = ("import sys, trainer.recipe, trainer.recipe.validate, trainer.recipe.merge, trainer.recipe.sources, "
            "trainer.recipe.diff, trainer.registry, trainer.constraints, trainer.specs; "
            f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
