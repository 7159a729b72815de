"""`shapes`: the built-in synthetic data set (coloured shapes on noise) for all three tasks.

Samples are drawn on the fly by `shapes_generator.generate_sample`, a pure function of
(seed, index), so the data set needs no files and any worker draws the same sample. Each split
uses its own generator seed, `seed * 3 + split_index` (train 0, val 1, test 2), so splits never
share a sample and a different `seed` gives a different data set.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torchvision import tv_tensors

from trainer.constraints import AtLeastOne, Range, Seed
from trainer.data.errors import DataError
from trainer.data.shapes_generator import SHAPE_NAMES, generate_sample
from trainer.registry import DATASETS

SPLITS: tuple[str, ...] = ("train", "val", "test")
TASKS: tuple[str, ...] = ("classification", "detection", "segmentation")
_DEFAULT_SHAPES = {"classification": (1, 1), "detection": (1, 4), "segmentation": (1, 3)}


@DATASETS.register("shapes", tasks=TASKS)
class ShapesDataset(torch.utils.data.Dataset):
    """Synthetic shapes; `num_images` samples of `image_size` x `image_size` pixels."""

    def __init__(
        self,
        *,
        task: str,
        split: str,
        num_images: Annotated[int, AtLeastOne],
        image_size: Annotated[int, Range(ge=8)] = 64,
        seed: Annotated[int, Seed] = 0,
        min_shapes: Annotated[int, AtLeastOne] | None = None,
        max_shapes: Annotated[int, AtLeastOne] | None = None,
    ) -> None:
        if task not in TASKS:
            raise DataError(f"shapes: unknown task '{task}' (choices: {', '.join(TASKS)})")
        if split not in SPLITS:
            raise DataError(f"shapes: unknown split '{split}' (choices: {', '.join(SPLITS)})")
        if num_images < 1:
            raise DataError(f"shapes: num_images must be at least 1, got {num_images}")
        if image_size < 8:
            raise DataError(f"shapes: image_size must be at least 8, got {image_size}")
        low, high = _DEFAULT_SHAPES[task]
        low = low if min_shapes is None else min_shapes
        high = high if max_shapes is None else max_shapes
        if task == "classification" and (low, high) != (1, 1):
            raise DataError("shapes: classification draws exactly one shape per image (min_shapes = max_shapes = 1)")
        if not 1 <= low <= high:
            raise DataError(f"shapes: need 1 <= min_shapes <= max_shapes, got {low} and {high}")
        self.task = task
        self.split = split
        self.num_images = num_images
        self.image_size = image_size
        self.min_shapes, self.max_shapes = low, high
        self.generator_seed = seed * len(SPLITS) + SPLITS.index(split)
        names = list(SHAPE_NAMES)
        self.class_names: list[str] = ["background", *names] if task == "segmentation" else names

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_images:
            raise IndexError(f"shapes: index {index} out of range for {self.num_images} images")
        drawn = generate_sample(
            seed=self.generator_seed,
            index=index,
            image_size=self.image_size,
            min_shapes=self.min_shapes,
            max_shapes=self.max_shapes,
        )
        image = tv_tensors.Image(torch.from_numpy(drawn.image).permute(2, 0, 1).contiguous())
        if self.task == "classification":
            return {"image": image, "label": int(drawn.labels[0])}
        if self.task == "segmentation":
            mask = tv_tensors.Mask(torch.from_numpy(drawn.mask).to(torch.int64))
            return {"image": image, "mask": mask, "image_id": index}
        size = self.image_size
        labels = torch.from_numpy(drawn.labels).to(torch.int64)
        return {
            "image": image,
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(drawn.boxes), format="XYXY", canvas_size=(size, size)),
            "labels": labels,
            "iscrowd": torch.zeros(len(labels), dtype=torch.bool),
            "image_id": index,
        }

    def coco_gt(self) -> dict:
        """Detection ground truth in COCO format (category_id = contiguous class index)."""
        if self.task != "detection":
            raise DataError(f"shapes: coco_gt() is for the detection task, not '{self.task}'")
        from trainer.data.coco import build_coco_gt

        size = self.image_size
        images, boxes, labels = [], [], []
        for index in range(self.num_images):
            drawn = generate_sample(
                seed=self.generator_seed,
                index=index,
                image_size=size,
                min_shapes=self.min_shapes,
                max_shapes=self.max_shapes,
            )
            images.append({"id": index, "width": size, "height": size, "file_name": f"shapes_{index:06d}.png"})
            boxes.append(drawn.boxes)
            labels.append(drawn.labels)
        crowd = [torch.zeros(len(x), dtype=torch.bool).numpy() for x in labels]
        return build_coco_gt(
            images=images, boxes_xyxy=boxes, labels=labels, iscrowd=crowd, class_names=self.class_names
        )
