"""Everything a run needs, built from a validated recipe before the first batch: data, model,
losses and the check that every loss finds its inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainer.data.batch_mixing import build_batch_mixing
from trainer.data.errors import DataError
from trainer.data.loaders import AugmentedDataset, build_loader
from trainer.data.transforms import NormalizeParams, build_transforms
from trainer.losses.module import LossModule, build_loss_module
from trainer.models.build import build_model, output_names
from trainer.recipe import LoadedRecipe, Recipe, recipe_to_dict
from trainer.registry import DATASETS
from trainer.tasks import get_task


class BuildError(Exception):
    """A recipe that validates but cannot be assembled (e.g. a loss input the model lacks)."""


@dataclass
class Normalizer:
    """Images arrive as uint8 and are normalised on the device: (x / 255 - mean) / std."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def build(cls, params: NormalizeParams | None, device: torch.device) -> "Normalizer":
        mean = params.mean if params is not None else (0.0, 0.0, 0.0)
        std = params.std if params is not None else (1.0, 1.0, 1.0)
        return cls(
            mean=torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
            std=torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1),
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        scaled = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return (scaled - self.mean) / self.std


@dataclass
class Session:
    recipe: Recipe
    loaded: LoadedRecipe
    task: Any
    device: torch.device
    class_names: list[str]
    train_set: AugmentedDataset | None
    val_set: AugmentedDataset
    train_loader: DataLoader | None
    val_loader: DataLoader
    model: nn.Module
    loss_module: LossModule
    normalizer: Normalizer
    batch_mixing: Any

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
    """The split's data set; a DataError names the recipe entry (data.<split>, file:line) it came from."""
    options = dict(getattr(recipe.data, split))
    try:
        return DATASETS.get(recipe.data.format)(task=recipe.task, split=split, **options)
    except DataError as error:
        place = f"{where}: data.{split}" if where else f"data.{split}"
        raise DataError(f"{place}: {error}") from None


_FIXED_SIZE_TRANSFORMS = ("letterbox", "resize", "random_resized_crop", "center_crop", "random_crop")


def _mosaic_size(recipe: Recipe, dataset: Any) -> int | list[int]:
    """The mosaic canvas: the size of the last fixed-size transform in augmentation.train (a `resize`
    only with [h, w]), else the data set's `image_size` (shapes)."""
    for entry in reversed(list(recipe.augmentation.train)):
        size = entry.get("size")
        if entry.get("name") not in _FIXED_SIZE_TRANSFORMS or size is None:
            continue
        if isinstance(size, (int, float)):
            if entry.get("name") != "resize":  # resize with one int sets the shorter side only
                return int(size)
        else:
            return [int(v) for v in size]
    size = getattr(dataset, "image_size", None)
    if size is None:
        raise BuildError(
            "augmentation.mosaic: cannot tell the mosaic output size; end augmentation.train with a fixed-size "
            "transform such as {name: letterbox, size: 640} or {name: resize, size: [640, 640]}"
        )
    return size


def _wrap_mosaic(recipe: Recipe, dataset: Any) -> tuple[Any, Any]:
    mosaic = recipe.augmentation.mosaic
    if recipe.task != "detection" or (mosaic.prob <= 0 and mosaic.mixup_prob <= 0):
        return dataset, None
    from trainer.data.mosaic import MosaicMixupDataset

    size = _mosaic_size(recipe, dataset)
    wrapped = MosaicMixupDataset(
        dataset, output_size=size, mosaic_prob=mosaic.prob, mixup_prob=mosaic.mixup_prob, scale=list(mosaic.scale)
    )
    off_from = recipe.training.epochs - mosaic.off_last_epochs

    def on_epoch(epoch: int) -> None:
        wrapped.set_enabled(epoch < off_from)

    return wrapped, on_epoch


def build_session(
    loaded: LoadedRecipe, *, device: torch.device, for_training: bool = True, distributed: bool = False
) -> Session:
    recipe = loaded.recipe
    task = get_task(recipe.task)
    seed = recipe.environment.seed
    val_base = _dataset(recipe, "val", loaded.locations.find(("data", "val")))
    class_names = list(val_base.class_names)
    val_transform, normalize = build_transforms(recipe.augmentation.val, task=recipe.task)
    val_set = AugmentedDataset(dataset=val_base, transform=val_transform, seed=seed)
    pin_memory = recipe.environment.pin_memory and device.type == "cuda"
    loader_options = dict(
        batch_size=recipe.training.batch_size, seed=seed, num_workers=recipe.environment.num_workers,
        pin_memory=pin_memory, collate=task.collate, distributed=distributed,
    )
    val_loader = build_loader(dataset=val_set, shuffle=False, drop_last=False, **loader_options)
    train_set = train_loader = None
    if for_training:
        train_base = _dataset(recipe, "train", loaded.locations.find(("data", "train")))
        if list(train_base.class_names) != class_names:
            raise BuildError(
                f"train and val data sets have different classes: {train_base.class_names} vs {class_names}"
            )
        train_transform, train_normalize = build_transforms(recipe.augmentation.train, task=recipe.task)
        if train_normalize != normalize:
            raise BuildError("augmentation.train and augmentation.val must end with the same normalize")
        wrapped, on_epoch = _wrap_mosaic(recipe, train_base)
        train_set = AugmentedDataset(dataset=wrapped, transform=train_transform, seed=seed, on_epoch=on_epoch)
        train_loader = build_loader(dataset=train_set, shuffle=True, drop_last=True, **loader_options)

    model_config = recipe_to_dict(recipe)["model"]
    criteria = [entry["criterion"] for entry in model_config["losses"]]
    model = build_model(
        task=recipe.task, architecture=model_config["architecture"], criteria=criteria, num_classes=len(class_names)
    ).to(device)
    loss_defaults = getattr(task, "loss_defaults", None)  # segmentation: ignore_index 255
    loss_module = build_loss_module(model_config["losses"], defaults=loss_defaults).to(device)
    sample_size = _sample_image_size(val_set)
    available = output_names(model=model, image_size=sample_size, training=True) | set(task.batch_fields) | {"epoch"}
    problems = loss_module.missing_inputs(available)
    if problems:
        raise BuildError("; ".join(problems))
    mix = recipe.augmentation.mix
    batch_mixing = None
    if recipe.task == "classification":
        batch_mixing = build_batch_mixing(
            num_classes=len(class_names), mixup_alpha=mix.mixup_alpha, cutmix_alpha=mix.cutmix_alpha, prob=mix.prob
        )
    return Session(
        recipe=recipe, loaded=loaded, task=task, device=device, class_names=class_names, train_set=train_set,
        val_set=val_set, train_loader=train_loader, val_loader=val_loader, model=model, loss_module=loss_module,
        normalizer=Normalizer.build(normalize, device), batch_mixing=batch_mixing,
    )


def _sample_image_size(dataset: AugmentedDataset) -> tuple[int, int]:
    image = dataset[(0, 0)]["image"]
    return int(image.shape[-2]), int(image.shape[-1])
