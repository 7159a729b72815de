"""A custom loss in a module outside the package, registered through the recipe's `imports:`."""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import yaml

from tests.conftest import ROOT, tiny_classification_recipe
from trainer.commands.train import train
from trainer.plugins import copy_plugins_into_run, load_entry_point

PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn
    from trainer.registry import LOSSES


    @LOSSES.register("squared_margin_loss", heads={"classification": ("fc",)})
    class SquaredMarginLoss(nn.Module):
        def __init__(self, *, margin: float = 1.0) -> None:
            super().__init__()
            self.margin = margin

        def forward(self, *, logits, labels):
            target = nn.functional.one_hot(labels, logits.shape[1]).float() * self.margin
            return {"sq": ((logits - target) ** 2).mean()}
''')


def test_train_with_a_custom_loss(tmp_path, write_recipe, monkeypatch):
    (tmp_path / "my_plugin_loss.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = tiny_classification_recipe()
    recipe["imports"] = ["my_plugin_loss"]
    recipe["model"]["losses"] = [{"criterion": "squared_margin_loss", "margin": 2.0}]
    path = write_recipe(recipe)
    run = train(recipes=[str(path)], overrides=["training.epochs=1"], output_dir=str(tmp_path / "runs"), name="p")
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert float(rows[0]["train/squared_margin_loss/sq"]) > 0
    sys.modules.pop("my_plugin_loss", None)


README_LOSS = textwrap.dedent('''
    from torch import nn
    from trainer.registry import LOSSES

    @LOSSES.register("{name}", heads={{"classification": ("fc",)}})
    class MyLoss(nn.Module):
        def __init__(self, *, margin: float = 1.0):
            super().__init__()
            self.margin = margin

        def forward(self, *, logits, labels):
            return {{"hinge": (self.margin - logits.gather(1, labels[:, None])).clamp(min=0).mean()}}
''')


def _recipe_importing(module: str, criterion: str) -> dict:
    recipe = tiny_classification_recipe(imports=[module])
    recipe["model"]["losses"] = [{"criterion": criterion, "margin": 0.5}]
    return recipe


def test_the_readme_example_beside_the_recipe_works_from_another_folder(tmp_path, cli, monkeypatch):
    """README "Extending": my_losses.py beside the recipe, `imports: [my_losses]`, run from elsewhere."""
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "readme_losses.py").write_text(README_LOSS.format(name="readme_loss"))
    path = tmp_path / "project" / "recipe.yaml"
    path.write_text(yaml.safe_dump(_recipe_importing("readme_losses", "readme_loss")))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = cli("check", path)
    assert result.exit_code == 0, result.output
    assert "loss/readme_loss/hinge" in result.output


def test_a_module_in_the_working_folder_is_found(tmp_path, cli, monkeypatch):
    (tmp_path / "cwd_losses.py").write_text(README_LOSS.format(name="cwd_loss"))
    (tmp_path / "recipes").mkdir()
    path = tmp_path / "recipes" / "recipe.yaml"
    path.write_text(yaml.safe_dump(_recipe_importing("cwd_losses", "cwd_loss")))
    monkeypatch.chdir(tmp_path)
    result = cli("check", path)
    assert result.exit_code == 0, result.output


def test_a_missing_module_names_the_folders_searched(tmp_path, cli, monkeypatch):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_recipe_importing("no_such_module_anywhere", "cross_entropy")))
    monkeypatch.chdir(tmp_path)
    result = cli("check", path)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "imports[0]: cannot import 'no_such_module_anywhere': no module named 'no_such_module_anywhere'" in output
    assert str(tmp_path) in output


def test_a_broken_installed_plugin_is_one_message_naming_it(tmp_path, monkeypatch):
    """A `trainer.plugins` entry point (as an installed distribution declares it) that raises while loading."""
    (tmp_path / "broken_ep_plugin.py").write_text("import os\n\nraise RuntimeError('needs a licence key')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_point = EntryPoint(name="broken", value="broken_ep_plugin", group="trainer.plugins")
    assert load_entry_point(entry_point) == (
        "plugin 'broken' of the trainer.plugins entry points: cannot import 'broken_ep_plugin': "
        f"{tmp_path / 'broken_ep_plugin.py'}:3: RuntimeError: needs a licence key")


def test_a_run_keeps_its_plugin_and_resumes_and_evaluates_from_anywhere(tmp_path, cli, monkeypatch):
    """The plugin beside the recipe is copied into the run folder: once the project folder is gone,
    `trainer eval RUN` and `trainer train --resume RUN` (new processes, another working folder) still
    import it; a file already in the run folder is not overwritten."""
    project = tmp_path / "project"
    (project / "snap_pkg").mkdir(parents=True)
    (project / "snap_pkg" / "__init__.py").write_text("from snap_pkg import losses  # noqa\n")
    (project / "snap_pkg" / "losses.py").write_text(README_LOSS.format(name="snapshot_loss"))
    recipe = _recipe_importing("snap_pkg", "snapshot_loss")
    recipe["training"]["epochs"] = 1
    (project / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = cli("train", project / "recipe.yaml", "--output-dir", tmp_path / "runs", "--name", "r")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "r"
    assert (run / "snap_pkg" / "losses.py").read_text() == (project / "snap_pkg" / "losses.py").read_text()
    assert f"plugin 'snap_pkg' copied from {project} into {run}" in " ".join(result.output.split())
    sys.modules.pop("snap_pkg", None)
    sys.modules.pop("snap_pkg.losses", None)
    project.rename(tmp_path / "moved_away")

    def trainer(*arguments):
        return subprocess.run([sys.executable, "-m", "trainer", *map(str, arguments)], capture_output=True, text=True,
                              cwd=tmp_path / "elsewhere", env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)

    evaluated = trainer("eval", run)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    (run / "snap_pkg" / "losses.py").write_text((run / "snap_pkg" / "losses.py").read_text() + "# edited\n")
    resumed = trainer("train", "--resume", run, "training.epochs=2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (run / "snap_pkg" / "losses.py").read_text().endswith("# edited\n")  # kept, not copied over


def test_a_plugin_that_cannot_be_copied_is_a_note_not_a_failure(tmp_path, monkeypatch):
    (tmp_path / "uncopyable_plugin.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("uncopyable_plugin")
    run = tmp_path / "run"
    run.mkdir()
    (run / "uncopyable_plugin.py").mkdir()  # something in the way: a folder of that name
    (run / "other").write_text("")
    notes = copy_plugins_into_run(["uncopyable_plugin", "os", "not_imported_at_all"], run_dir=run)
    assert notes == [f"plugin 'uncopyable_plugin' copied from {tmp_path} into {run}"]  # kept what was there
    monkeypatch.setattr("shutil.copy2", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    (run / "uncopyable_plugin.py").rmdir()
    notes = copy_plugins_into_run(["uncopyable_plugin"], run_dir=run)
    assert notes == [f"plugin 'uncopyable_plugin' could not be copied into {run}: [Errno 28] No space left"]
    monkeypatch.setattr("trainer.plugins.SNAPSHOT_LIMIT_BYTES", 4)
    notes = copy_plugins_into_run(["uncopyable_plugin"], run_dir=run)
    assert notes == [f"plugin 'uncopyable_plugin' is over 0 MB of Python files and was not copied into {run}: "
                     "resume or evaluate the run where it can be imported"]
    assert not (run / "uncopyable_plugin.py").exists()
    sys.modules.pop("uncopyable_plugin", None)
