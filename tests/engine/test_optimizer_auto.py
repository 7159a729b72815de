"""`optimizer: {name: auto}`: the schema default picks the optimizer and lr from task, model, batch and steps."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from trainer.engine.optimizers import LONG_SCHEDULE_STEPS, build_optimizer, choose_optimizer
from trainer.models.heads.anchor_decoupled import AnchorDecoupledHead
from trainer.recipe.schema import TrainingConfig

CPU = torch.device("cpu")


def _retinanet_like() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3), AnchorDecoupledHead(in_channels=[32], in_strides=[8], num_classes=3))


def test_the_schema_default_is_auto() -> None:
    assert TrainingConfig().optimizer == {"name": "auto"}


@pytest.mark.parametrize(
    ("task", "model", "name", "lr", "weight_decay"),
    [
        ("classification", nn.Linear(4, 2), "adamw", 2e-3, 0.01),
        ("segmentation", nn.Linear(4, 2), "adamw", 2e-3, 1e-4),
        ("detection", nn.Linear(4, 2), "adamw", 3e-3, 0.05),  # anchor-free (YOLOX)
        ("detection", _retinanet_like(), "adamw", 1e-3, 0.05),  # anchor-based (RetinaNet)
    ],
)
def test_short_schedules_get_adamw_at_the_measured_lr(task, model, name, lr, weight_decay) -> None:
    choice = choose_optimizer(task=task, model=model, total_steps=LONG_SCHEDULE_STEPS, batch_size=16)
    assert (choice.name, choice.lr, choice.weight_decay) == (name, lr, weight_decay)


@pytest.mark.parametrize(
    ("task", "batch_size", "lr"),
    [("classification", 256, 0.1), ("detection", 64, 0.01), ("detection", 128, 0.02), ("segmentation", 16, 0.01)],
)
def test_long_schedules_get_sgd_with_a_batch_scaled_lr(task, batch_size, lr) -> None:
    choice = choose_optimizer(task=task, model=nn.Linear(4, 2), total_steps=LONG_SCHEDULE_STEPS + 1,
                              batch_size=batch_size)
    assert choice.name == "sgd"
    assert choice.lr == pytest.approx(lr)
    assert choice.options()["momentum"] == 0.9 and choice.options()["nesterov"] is True


def test_build_optimizer_auto_builds_the_choice_and_says_it(capsys) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    optimizer = build_optimizer(model=model, options={"name": "auto"}, no_decay_norm_bias=True, device=CPU,
                                task="detection", total_steps=500, batch_size=16)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["lr"] for g in optimizer.param_groups] == [3e-3, 3e-3]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]  # norms and biases keep no decay
    assert "optimizer auto: adamw lr 0.003, weight decay 0.05 (detection, 500 steps" in capsys.readouterr().out

    long = build_optimizer(model=model, options={"name": "auto"}, no_decay_norm_bias=True, device=CPU,
                           task="classification", total_steps=20_000, batch_size=64)
    assert isinstance(long, torch.optim.SGD)
    assert long.param_groups[0]["lr"] == pytest.approx(0.025)
    assert long.param_groups[0]["nesterov"] is True


@pytest.mark.parametrize(("task", "data"), [("classification", "shapes"), ("classification", "image_folder"),
                                           ("detection", "shapes"), ("detection", "coco"), ("detection", "yolo"),
                                           ("segmentation", "shapes"), ("segmentation", "mask_folder")])
def test_trainer_new_templates_leave_optimizer_and_warmup_to_the_defaults(task, data) -> None:
    """auto picks the optimizer; the task sets the warmup (a 1-epoch warmup from 0.1x cost YOLOX-nano
    mAP50-95 with AdamW; classification needs one: docs/benchmarks.md)."""
    import yaml

    from trainer.commands.new import new_recipe

    training = yaml.safe_load(new_recipe(task=task, data=data))["training"]
    assert training["optimizer"] == {"name": "auto"}
    assert training["scheduler"] == {"name": "cosine"}


@pytest.mark.parametrize(("task", "warmup"), [("classification", 1.0), ("detection", 0.0), ("segmentation", 0.0)])
def test_the_task_sets_the_warmup_a_recipe_leaves_out(task, warmup) -> None:
    """Measured: classification from scratch needs a 1-epoch warmup (top1 0.32 without, 0.9975 with);
    YOLOX-nano trains better without one (docs/benchmarks.md)."""
    from trainer.tasks import task_class

    assert task_class(task).default_warmup_epochs == warmup


@pytest.mark.parametrize(("scheduler", "first_lr_factor"), [({"name": "cosine"}, 0.1),
                                                           ({"name": "cosine", "warmup_epochs": 0}, 1.0)])
def test_a_classification_run_warms_up_unless_the_recipe_says_otherwise(scheduler, first_lr_factor, tmp_path) -> None:
    from tests.conftest import tiny_classification_recipe
    from trainer.engine.session import build_session
    from trainer.engine.train_state import build_scheduler
    from trainer.recipe import load_recipe

    recipe = tiny_classification_recipe()
    recipe["training"]["scheduler"] = scheduler
    recipe["training"]["optimizer"] = {"name": "adamw", "lr": 1e-3}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    session = build_session(load_recipe([path]), device=CPU)
    optimizer = torch.optim.AdamW(session.model.parameters(), lr=1e-3)
    build_scheduler(session, optimizer, micro_steps=4)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * first_lr_factor)
