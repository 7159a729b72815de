"""Values that type-check but are wrong are recipe errors, from the constraints declared next to each
component (`Annotated[...]` in its signature) and in the schema; `trainer check` reports them all."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_classification_recipe
from trainer.recipe import RecipeError, load_recipe

DETECTION = {
    "task": "detection",
    "model": {"architecture": {"backbone": {"name": "cspdarknet_nano"}, "neck": {"name": "pafpn"}},
              "losses": [{"criterion": "yolox_loss"}]},
}


def problems(write_recipe, overrides: list[str], **sections) -> str:
    recipe = tiny_classification_recipe(**sections)
    with pytest.raises(RecipeError) as caught:
        load_recipe([write_recipe(recipe)], overrides)
    return str(caught.value)


@pytest.mark.parametrize(("override", "expected"), [
    ("training.optimizer.lr=.nan", "training.optimizer.lr: must be a finite number, got nan"),
    ("training.optimizer.lr=-0.1", "training.optimizer.lr: must be > 0, got -0.1"),
    ("training.optimizer={name: adam, betas: [0.9, 1.5]}", "training.optimizer.betas[1]: must be in [0, 1), got 1.5"),
    ("training.optimizer.momentum=1.5", "training.optimizer.momentum: must be in [0, 1], got 1.5"),
    ("training.optimizer.weight_decay=-1", "training.optimizer.weight_decay: must be >= 0"),
    ("model.losses.0.weight=.nan", "model.losses[0].weight: must be a finite number"),
    ("model.losses.0.weight=-2", "model.losses[0].weight: must be >= 0"),
    ("model.losses.0.label_smoothing=1.5", "model.losses[0].label_smoothing: must be in [0, 1], got 1.5"),
    ("model.postprocess.nms_iou=-1", "model.postprocess.nms_iou: must be in [0, 1], got -1"),
    ("model.postprocess.score_threshold=2", "model.postprocess.score_threshold: must be in [0, 1], got 2"),
    ("environment.seed=18446744073709551616", "environment.seed: must be in [0, 18446744073709551615]"),
    ("environment.seed=-1", "environment.seed: must be in [0, 18446744073709551615]"),
    ("training.batch_size=100000000000", "training.batch_size: must be in [1, 65536]"),
    ("training.epochs=0", "training.epochs: must be >= 1, got 0"),
    ("training.scheduler={name: cosine, warmup_start_factor: 0}", "warmup_start_factor: must be in (0, 1]"),
    ("training.ema.decay=1", "training.ema.decay: must be in (0, 1), got 1"),
    ("training.grad_clip=-1", "training.grad_clip: must be > 0"),
    ("training.amp=fp8", "training.amp: must be one of none, auto, bf16, fp16, got 'fp8'"),
    ("environment.device=tpu", "environment.device: must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("augmentation.mix.prob=.inf", "augmentation.mix.prob: must be a finite number, got inf"),
    ("data.train.image_size=.nan", "data.train.image_size: must be a finite number, got nan"),
])
def test_a_wrong_value_is_a_recipe_error_naming_it(write_recipe, override, expected):
    message = problems(write_recipe, [override])
    assert expected in message, message
    assert f"command-line override '{override}'" in message


def test_all_wrong_values_come_together(write_recipe):
    overrides = ["training.optimizer.lr=.nan", "model.postprocess.nms_iou=-1", "training.epochs=0"]
    message = problems(write_recipe, overrides)
    assert "3 problems" in message


@pytest.mark.parametrize(("entry", "expected"), [
    ({"weight": {"iou": 5.0, "box": 1.0}}, "model.losses[0].weight.box: 'box' is not a part of yolox_loss "
                                           "(parts: iou, obj, cls, l1)"),
    ({"exclude": ["l1", "l2"]}, "model.losses[0].exclude[1]: 'l2' is not a part of yolox_loss"),
    ({"weight": {"iou": -1.0}}, "model.losses[0].weight.iou: must be >= 0, got -1.0"),
])
def test_per_part_weights_and_exclusions_name_declared_parts(write_recipe, entry, expected):
    model = {**DETECTION["model"], "losses": [{"criterion": "yolox_loss", **entry}]}
    message = problems(write_recipe, [], task="detection", model=model)
    assert expected in message, message


def test_declared_parts_pass(write_recipe):
    model = {**DETECTION["model"], "losses": [{"criterion": "yolox_loss", "weight": {"iou": 5.0}, "exclude": ["l1"]}]}
    load_recipe([write_recipe(tiny_classification_recipe(task="detection", model=model))])


def test_class_weights_of_the_wrong_length_name_the_option(write_recipe):
    from trainer.engine.session import build_session

    model = {"architecture": {"backbone": {"name": "resnet18"}},
             "losses": [{"criterion": "cross_entropy", "class_weights": [1.0, 2.0]}]}
    loaded = load_recipe([write_recipe(tiny_classification_recipe(model=model))])
    with pytest.raises(RecipeError) as caught:
        build_session(loaded, device=torch.device("cpu"), for_training=False)
    message = str(caught.value)
    assert "recipe.yaml:" in message and "model.losses[0].class_weights: 2 values for 4 classes" in message
