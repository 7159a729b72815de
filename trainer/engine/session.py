"""Everything a run needs, built from a validated recipe before the first batch: data, model,
losses and the check that every loss finds its inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainer.data.errors import DataError
from trainer.data.loaders import AugmentedDataset, build_loader
from trainer.data.sizes import check_batchable
from trainer.data.transforms import NormalizeParams, build_transforms, provided_batch_fields
from trainer.engine.inference import Normalizer, build_recipe_model
from trainer.losses.module import LossModule, build_loss_module
from trainer.models.build import output_names
from trainer.recipe import LoadedRecipe, Recipe
from trainer.recipe.class_counts import check_class_counts
from trainer.registry import DATASETS
from trainer.tasks import get_task
from trainer.tasks.base import Task


class BuildError(Exception):
    """A recipe that validates but cannot be assembled (e.g. a loss input the model lacks)."""


@dataclass
class Session:
    recipe: Recipe
    task: Task
    device: torch.device
    class_names: list[str]
    train_set: AugmentedDataset | None
    val_set: AugmentedDataset
    train_loader: DataLoader | None
    val_loader: DataLoader
    model: nn.Module
    loss_module: LossModule
    normalizer: Normalizer
    batch_mixing: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None

    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        moved = {
            key: value.to(self.device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()
        }
        images = self.normalizer(moved["images"])
        if self.recipe.training.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        moved["images"] = images
        return moved


def _dataset(recipe: Recipe, split: str, where: str | None = None) -> Any:
    """The split's data set, checked to stack into batches after its augmentation; a DataError names
    the recipe entry (data.<split>, file:line) it came from."""
    options = dict(getattr(recipe.data, split))
    try:
        dataset = DATASETS.get(recipe.data.format)(task=recipe.task, split=split, **options)
        check_batchable(dataset, transforms=getattr(recipe.augmentation, split), section=f"augmentation.{split}",
                        batch_size=recipe.training.batch_size)
    except DataError as error:
        place = f"{where}: data.{split}" if where else f"data.{split}"
        raise DataError(f"{place}: " + str(error).replace("\n", "\n  ")) from None
    return dataset


def _datasets(loaded: LoadedRecipe, splits: tuple[str, ...]) -> dict[str, Any]:
    """Every split's data set; the data problems of all splits are reported together."""
    built, problems = {}, []
    for split in splits:
        try:
            built[split] = _dataset(loaded.recipe, split, loaded.locations.blame(("data", split)))
        except DataError as error:
            problems.append(str(error))
    if problems:
        raise DataError("\n".join(problems))
    return built


def _model_and_losses(recipe: Recipe, task: Task, *, num_classes: int, val_set: AugmentedDataset,
                      device: torch.device) -> tuple[nn.Module, LossModule]:
    """The recipe's model and losses, checked: every loss finds the inputs it reads."""
    model = build_recipe_model(recipe, num_classes=num_classes).to(device)
    loss_module = build_loss_module(recipe.model.loss_specs(), defaults=task.loss_defaults).to(device)
    sample_size = _sample_image_size(val_set)
    available = output_names(model=model, image_size=sample_size, training=True) | set(task.batch_fields) | {"epoch"}
    available |= provided_batch_fields(recipe.augmentation.train)  # e.g. boundary_labels from `boundary_target`
    problems = loss_module.missing_inputs(available)
    if problems:
        raise BuildError("; ".join(problems))
    return model, loss_module


def _train_set(recipe: Recipe, task: Task, train_base: Any, *, class_names: list[str],
               normalize: NormalizeParams | None) -> AugmentedDataset:
    if list(train_base.class_names) != class_names:
        raise BuildError(f"train and val data sets have different classes: {train_base.class_names} vs {class_names}")
    train_transform, train_normalize = build_transforms(recipe.augmentation.train, task=recipe.task,
                                                        sanitize_boxes=task.has_boxes)
    if train_normalize != normalize:
        raise BuildError("augmentation.train and augmentation.val must end with the same normalize")
    wrapped, on_epoch = task.wrap_train_dataset(train_base, recipe=recipe)
    return AugmentedDataset(dataset=wrapped, transform=train_transform, seed=recipe.environment.seed,
                            on_epoch=on_epoch)


def build_session(
    loaded: LoadedRecipe, *, device: torch.device, for_training: bool = True, distributed: bool = False
) -> Session:
    recipe = loaded.recipe
    task = get_task(recipe.task)
    seed = recipe.environment.seed
    datasets = _datasets(loaded, ("val", "train") if for_training else ("val",))
    class_names = list(datasets["val"].class_names)
    check_class_counts(recipe, loaded.locations, class_names=class_names)  # e.g. a loss's class_weights
    val_transform, normalize = build_transforms(recipe.augmentation.val, task=recipe.task,
                                                 sanitize_boxes=task.has_boxes)
    val_set = AugmentedDataset(dataset=datasets["val"], transform=val_transform, seed=seed)
    pin_memory = recipe.environment.pin_memory and device.type == "cuda"
    loader_options = dict(
        batch_size=recipe.training.batch_size, seed=seed, num_workers=recipe.environment.num_workers,
        pin_memory=pin_memory, collate=task.collate, distributed=distributed,
    )
    val_loader = build_loader(dataset=val_set, shuffle=False, drop_last=False, **loader_options)
    train_set = train_loader = None
    if for_training:
        train_set = _train_set(recipe, task, datasets["train"], class_names=class_names, normalize=normalize)
        train_loader = build_loader(dataset=train_set, shuffle=True, drop_last=True, **loader_options)
    model, loss_module = _model_and_losses(recipe, task, num_classes=len(class_names), val_set=val_set, device=device)
    return Session(
        recipe=recipe, task=task, device=device, class_names=class_names, train_set=train_set,
        val_set=val_set, train_loader=train_loader, val_loader=val_loader, model=model, loss_module=loss_module,
        normalizer=Normalizer.build(normalize, device),
        batch_mixing=task.build_batch_mixing(recipe=recipe, num_classes=len(class_names)),
    )


def _sample_image_size(dataset: AugmentedDataset) -> tuple[int, int]:
    image = dataset[(0, 0)]["image"]
    return int(image.shape[-2]), int(image.shape[-1])
