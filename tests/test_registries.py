"""Registry-parametrized tests (timm style): every registered dataset, transform, optimizer,
scheduler, full model and loss is built from its defaults and exercised, so a new entry is tested
without writing a test. Options a component requires are made up from its type annotations."""

from __future__ import annotations

import inspect
import math
import types
import typing
from typing import Any

import pytest
import torch
import yaml

from trainer.commands.data_export import FORMATS_FOR_TASK, export_shapes
from trainer.components import load_builtin_components
from trainer.constraints import constraints_of
from trainer.data.loaders import AugmentedDataset
from trainer.data.transforms import build_transforms
from trainer.registry import DATASETS, FULL_MODELS, LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS, Registry

load_builtin_components()
TASKS = ("classification", "detection", "segmentation")
SIZE = 32


def example_value(annotation: Any) -> Any:
    """A small valid value of a type (for options without a default)."""
    annotation, _ = constraints_of(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        annotation, _ = constraints_of(annotation)
    if typing.get_origin(annotation) in (list, tuple):
        return [example_value(typing.get_args(annotation)[0])] * 2
    return {int: SIZE // 2, float: 0.5, bool: True, str: "x"}.get(annotation, None)


def required_options(registry: Registry, name: str) -> dict[str, Any]:
    hints = registry.hints(name)
    return {key: example_value(hints.get(key, int)) for key, parameter in registry.options(name).items()
            if parameter.default is inspect.Parameter.empty}


def tasks_of(registry: Registry, name: str) -> tuple[str, ...]:
    return tuple(registry.meta(name).get("tasks", TASKS))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Each file format's data section, 2 images per split, written by `trainer data shapes`."""
    root = tmp_path_factory.mktemp("formats")
    return {fmt: export_shapes(task=task, fmt=fmt, out=root / fmt, num_images=2, image_size=SIZE)
            for task, formats in FORMATS_FOR_TASK.items() for fmt in formats}


def dataset_options(name: str, split: str, exported: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A file format's exported folder, or options made up from the signature (small images)."""
    if name in exported:
        return dict(exported[name][split])
    options = required_options(DATASETS, name)
    if "image_size" in DATASETS.options(name):
        options["image_size"] = SIZE
    return options


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_gives_a_sample(name, exported):
    for task in tasks_of(DATASETS, name):
        dataset = DATASETS.get(name)(task=task, split="val", **dataset_options(name, "val", exported))
        assert len(dataset) >= 1 and len(dataset.class_names) >= 1
        sample = dataset[0]
        assert sample["image"].shape[-3] == 3, (name, task)


TRANSFORM_CASES = [(name, task) for name in TRANSFORMS.names() for task in tasks_of(TRANSFORMS, name)]


@pytest.mark.parametrize(("name", "task"), TRANSFORM_CASES, ids=[f"{n}-{t}" for n, t in TRANSFORM_CASES])
def test_every_transform_runs_on_a_sample_of_each_task(name, task):
    entry = {"name": name, **required_options(TRANSFORMS, name)}
    pipeline, _ = build_transforms([entry], task=task)
    dataset = DATASETS.get("shapes")(task=task, split="val", num_images=2, image_size=SIZE)
    sample = AugmentedDataset(dataset=dataset, transform=pipeline, seed=0)[1]
    assert sample["image"].ndim == 3 and sample["image"].shape[0] == 3


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 2))


def one_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    loss = model(torch.rand(2, 3, 8, 8)).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_takes_a_step(name):
    from trainer.engine.optimizers import build_optimizer

    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(model=model, options={"name": name}, no_decay_norm_bias=True,
                                device=torch.device("cpu"), total_steps=10, batch_size=2)
    assert math.isfinite(one_step(model, optimizer))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_scheduler_keeps_a_positive_learning_rate(name):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = SCHEDULERS.get(name)(optimizer=optimizer, steps_per_epoch=3, epochs=2,
                                     **required_options(SCHEDULERS, name))
    rates = []
    for _ in range(6):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(math.isfinite(rate) and rate >= 0 for rate in rates)


@pytest.mark.parametrize("name", FULL_MODELS.names())
def test_every_full_model_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = FULL_MODELS.get(name)(num_classes=3, **required_options(FULL_MODELS, name))
    outputs = model(torch.rand(2, 3, 64, 64))
    tensors = [outputs] if isinstance(outputs, torch.Tensor) else [v for v in outputs.values()
                                                                    if isinstance(v, torch.Tensor)]
    sum(tensor.float().mean() for tensor in tensors).backward()
    assert all(torch.isfinite(tensor).all() for tensor in tensors)
    assert any(p.grad is not None for p in model.parameters())


LOSS_CASES = [(name, task) for name in LOSSES.names() for task in LOSSES.meta(name).get("heads", {})]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "task"), LOSS_CASES, ids=[f"{n}-{t}" for n, t in LOSS_CASES])
def test_every_loss_trains_one_step_with_the_head_it_implies(name, task, tmp_path):
    """`trainer new` writes the recipe for (task, loss); `trainer check` runs forward and backward."""
    from trainer.commands.check import check_command
    from trainer.commands.new import new_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(new_recipe(task=task, loss=name))
    assert yaml.safe_load(path.read_text())["model"]["losses"][0]["criterion"] == name
    tiny = ["data.train.num_images=2", "data.val.num_images=2", f"data.train.image_size={SIZE * 2}",
            f"data.val.image_size={SIZE * 2}", "training.batch_size=2", "environment.num_workers=0"]
    parts = check_command(recipes=[str(path)], overrides=tiny, device="cpu")
    assert parts and all(math.isfinite(value) for value in parts.values())
    assert {key.split("/")[-1] for key in parts} == set(LOSSES.meta(name)["parts"])  # the parts it declares


def test_every_loss_declares_its_parts():
    """Every built-in loss declares its parts (a plugin may leave them out; other tests register plugins)."""
    for name in LOSSES.names():
        if not LOSSES.get(name).__module__.startswith("trainer."):
            continue
        parts = LOSSES.meta(name).get("parts")
        assert parts and all(isinstance(part, str) for part in parts), f"@LOSSES.register('{name}', parts=(...))"
