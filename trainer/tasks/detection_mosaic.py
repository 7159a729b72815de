"""The detection training set wrapped in mosaic / mixup (`augmentation.mosaic`), switched off for
the last `off_last_epochs` epochs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainer.data.errors import DataError

if TYPE_CHECKING:
    from trainer.recipe.schema import Recipe

FIXED_SIZE_TRANSFORMS = ("letterbox", "resize", "random_resized_crop", "center_crop", "random_crop")


def mosaic_size(recipe: Recipe, dataset: Any) -> int | list[int]:
    """The mosaic canvas: the size of the last fixed-size transform in augmentation.train (a `resize`
    only with [h, w]), else the data set's `image_size` (shapes)."""
    for entry in reversed(list(recipe.augmentation.train)):
        size = entry.get("size")
        if entry.get("name") not in FIXED_SIZE_TRANSFORMS or size is None:
            continue
        if isinstance(size, (int, float)):
            if entry.get("name") != "resize":  # resize with one int sets the shorter side only
                return int(size)
        else:
            return [int(v) for v in size]
    size = getattr(dataset, "image_size", None)
    if size is None:
        raise DataError(
            "augmentation.mosaic: cannot tell the mosaic output size; end augmentation.train with a fixed-size "
            "transform such as {name: letterbox, size: 640} or {name: resize, size: [640, 640]}"
        )
    return size


def wrap_mosaic(dataset: Any, *, recipe: Recipe) -> tuple[Any, Callable[[int], None] | None]:
    """`dataset` in a MosaicMixupDataset when the recipe asks for mosaic or mixup, with its per-epoch switch."""
    mosaic = recipe.augmentation.mosaic
    if mosaic.prob <= 0 and mosaic.mixup_prob <= 0:
        return dataset, None
    from trainer.data.mosaic import MosaicMixupDataset

    wrapped = MosaicMixupDataset(
        dataset, output_size=mosaic_size(recipe, dataset), mosaic_prob=mosaic.prob, mixup_prob=mosaic.mixup_prob,
        scale=list(mosaic.scale),
    )
    off_from = recipe.training.epochs - mosaic.off_last_epochs

    def on_epoch(epoch: int) -> None:
        wrapped.set_enabled(epoch < off_from)

    return wrapped, on_epoch
