"""Recipe errors name the file, line and column, the key path and the closest valid name; several
problems come together in one message (exit code 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer.recipe import RecipeError, load_recipe

GOOD = """\
task: classification
data:
  format: shapes
  train: {num_images: 8, image_size: 32}
  val: {num_images: 8, image_size: 32}
training:
  batch_size: 4
  optimizer: {name: sgd, lr: 0.01}
model:
  architecture:
    backbone: {name: resnet18}
  losses:
    - criterion: cross_entropy
environment: {num_workers: 0}
"""

# a misspelt key on line 7 and an unknown criterion on line 12
TWO_PROBLEMS = """\
task: classification
data:
  format: shapes
  train: {num_images: 8, image_size: 32}
  val: {num_images: 8, image_size: 32}
training:
  epoch: 3
model:
  architecture:
    backbone: {name: resnet18}
  losses:
    - criterion: focal
"""


def write(directory: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def error_text(paths: list[Path], overrides: list[str] = ()) -> str:
    with pytest.raises(RecipeError) as caught:
        load_recipe(paths, overrides)
    return str(caught.value)


@pytest.mark.parametrize("command", ["check", "show"])
def test_two_problems_give_one_message_naming_both_lines(tmp_path, cli, command):
    path = write(tmp_path, TWO_PROBLEMS)
    result = cli(command, path)
    assert result.exit_code == 2
    message = result.stderr
    assert message.count("recipe error") == 1
    assert "2 problems" in message
    assert f"{path}:7:3: training.epoch: unknown key 'epoch'; did you mean 'epochs'?" in message
    assert f"{path}:12:7: model.losses[0].criterion: unknown criterion 'focal'; did you mean 'focal_loss'?" in message
    assert message.index(":7:3:") < message.index(":12:7:")  # in reading order
    assert "Traceback" not in message + result.stdout


def test_cli_entry_point_prints_no_traceback(tmp_path):
    path = write(tmp_path, TWO_PROBLEMS)
    done = subprocess.run([sys.executable, "-m", "trainer.cli", "show", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert ":7:3:" in done.stderr and ":12:7:" in done.stderr
    assert done.stdout == ""


def test_override_says_it_came_from_the_command_line(tmp_path):
    message = error_text([write(tmp_path, GOOD)], ["training.epoch=3"])
    assert "command-line override 'training.epoch=3'" in message
    assert "did you mean 'epochs'?" in message


def test_file_and_override_problems_are_reported_together(tmp_path):
    message = error_text([write(tmp_path, TWO_PROBLEMS)], ["training.batch_size=many"])
    assert "3 problems" in message
    assert "command-line override 'training.batch_size=many': training.batch_size: expected an integer" in message


def test_wrong_types(tmp_path):
    text = GOOD.replace("batch_size: 4", "batch_size: four\n  amp: 16\n  ema: {enabled: sure}")
    message = error_text([write(tmp_path, text)])
    assert "recipe.yaml:7:3: training.batch_size: expected an integer, got 'four'" in message
    assert "recipe.yaml:8:3: training.amp: expected a string, got 16" in message
    assert "recipe.yaml:9:9: training.ema.enabled: expected true or false, got 'sure'" in message


def test_unknown_option_of_a_loss_points_at_the_option(tmp_path):
    text = GOOD.replace("task: classification", "task: detection").replace(
        "    - criterion: cross_entropy", "    - criterion: yolox_loss\n      l1_activate_epochs: 5"
    )
    text = text.replace("backbone: {name: resnet18}", "backbone: {name: cspdarknet_nano}\n    neck: {name: pafpn}")
    message = error_text([write(tmp_path, text)])
    assert message.startswith("recipe error: ")
    assert "recipe.yaml:15:7: model.losses[0].l1_activate_epochs: unknown option 'l1_activate_epochs'" in message
    assert "did you mean 'l1_activate_epoch'?" in message


def test_option_type_inside_a_component_points_at_the_option(tmp_path):
    text = GOOD.replace("optimizer: {name: sgd, lr: 0.01}", "optimizer:\n    name: sgd\n    lr: fast")
    message = error_text([write(tmp_path, text)])
    assert "recipe.yaml:10:5: training.optimizer.lr: expected a number, got 'fast'" in message


def test_unknown_component_names_suggest_the_closest(tmp_path):
    text = GOOD.replace("resnet18", "resnet_18").replace("name: sgd", "name: sgdd")
    text = text.replace("format: shapes", "format: shape")
    message = error_text([write(tmp_path, text)])
    assert "data.format: unknown dataset 'shape'; did you mean 'shapes'?" in message
    assert "model.architecture.backbone.name: unknown backbone 'resnet_18'; did you mean 'resnet18'?" in message
    assert "training.optimizer.name: unknown optimizer 'sgdd'; did you mean 'sgd'?" in message


def test_unknown_transform_and_misspelt_section(tmp_path):
    text = GOOD + "augmentation:\n  train:\n    - {name: hfilp}\nlogging: {ouput_dir: runs}\n"
    message = error_text([write(tmp_path, text)])
    assert "recipe.yaml:17:8: augmentation.train[0].name: unknown transform 'hfilp'; did you mean 'hflip'?" in message
    assert "recipe.yaml:18:11: logging.ouput_dir: unknown key 'ouput_dir'; did you mean 'output_dir'?" in message


def test_bad_choice_suggests_the_closest(tmp_path):
    message = error_text([write(tmp_path, GOOD)], ["task=detect"])
    assert "must be one of classification, detection, segmentation, got 'detect'; did you mean 'detection'?" in message


def test_problem_without_a_key_names_the_file(tmp_path):
    path = write(tmp_path, GOOD[: GOOD.index("model:")])
    message = error_text([path])
    assert f"{path}: model.losses: at least one loss is needed" in message


def test_dataset_for_another_task(tmp_path):
    text = GOOD.replace("format: shapes", "format: coco").replace(
        "{num_images: 8, image_size: 32}", "{images_dir: x, annotations: y.json}"
    )
    message = error_text([write(tmp_path, text)])
    assert "recipe.yaml:3:3: data.format: dataset 'coco' holds detection data, not classification" in message


def test_invalid_yaml_names_the_line(tmp_path):
    message = error_text([write(tmp_path, GOOD.replace("batch_size: 4", "batch_size: [4"))])
    assert "recipe.yaml:8:" in message and "invalid YAML" in message


def test_key_written_twice_is_an_error(tmp_path):
    message = error_text([write(tmp_path, GOOD + "training: {epochs: 2}\n")])
    assert "recipe.yaml:15:1: training: key written twice (first at" in message
    assert "recipe.yaml:6:1)" in message


def test_exponent_numbers_are_numbers(tmp_path):
    loaded = load_recipe([write(tmp_path, GOOD.replace("lr: 0.01", "lr: 1e-3"))], ["training.ema.decay=9.999e-1"])
    assert loaded.recipe.training.optimizer["lr"] == pytest.approx(1e-3)
    assert loaded.recipe.training.ema.decay == pytest.approx(0.9999)


def test_missing_recipe_file(tmp_path, cli):
    result = cli("show", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "recipe file not found" in result.stderr
