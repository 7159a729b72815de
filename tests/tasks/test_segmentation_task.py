"""Segmentation task wiring: collate, evaluator, report, predict, the ignore index, and the boundary
target following the augmented labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from rich.table import Table
from torchvision import tv_tensors

from trainer.components import load_builtin_components
from trainer.data.errors import DataError
from trainer.data.loaders import AugmentedDataset
from trainer.data.shapes import ShapesDataset
from trainer.data.transforms import build_transforms
from trainer.losses import pidnet as pidnet_module
from trainer.losses.boundary_target import boundary_target
from trainer.losses.module import build_loss_module
from trainer.recipe import RecipeError, load_recipe
from trainer.tasks import get_task
from trainer.tasks.segmentation import SegmentationTask

CLASSES = ["background", "a", "b"]


@pytest.fixture(autouse=True)
def _components():
    load_builtin_components()


def sample(mask: torch.Tensor, image_id: int = 0) -> dict:
    height, width = mask.shape
    image = tv_tensors.Image(torch.randint(0, 256, (3, height, width), dtype=torch.uint8))
    return {"image": image, "mask": tv_tensors.Mask(mask.to(torch.int64)), "image_id": image_id}


def one_hot_logits(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).float() * 10


def test_registered_and_declares_its_fields():
    task = get_task("segmentation")
    assert isinstance(task, SegmentationTask)
    assert task.name == "segmentation"
    assert task.metric_names == ("mIoU", "pixel_acc")
    assert task.default_best_metric == "mIoU"
    assert task.batch_fields == ("images", "labels")


def test_collate_stacks_images_and_int64_labels_keeping_ignore():
    masks = [torch.zeros(6, 8, dtype=torch.int64), torch.full((6, 8), 2, dtype=torch.int64)]
    masks[0][0, 0] = 255
    batch = SegmentationTask().collate([sample(m, i) for i, m in enumerate(masks)])
    assert batch["images"].shape == (2, 3, 6, 8) and batch["images"].dtype == torch.uint8
    assert type(batch["images"]) is torch.Tensor and type(batch["labels"]) is torch.Tensor
    assert batch["labels"].shape == (2, 6, 8) and batch["labels"].dtype == torch.int64
    assert batch["labels"][0, 0, 0] == 255 and (batch["labels"][1] == 2).all()
    assert batch["image_ids"].tolist() == [0, 1]


def test_collate_different_sizes_is_a_clear_data_error():
    samples = [sample(torch.zeros(6, 8)), sample(torch.zeros(6, 9))]
    with pytest.raises(DataError, match="different sizes.*fixed-size transform"):
        SegmentationTask().collate(samples)


def test_perfect_predictions_give_miou_one():
    labels = torch.randint(0, 3, (2, 16, 16))
    evaluator = SegmentationTask().build_evaluator(class_names=CLASSES, device=torch.device("cpu"), postprocess=None)
    evaluator.update(outputs={"logits": one_hot_logits(labels, 3)}, batch={"labels": labels})
    assert evaluator.compute() == {"mIoU": 1.0, "pixel_acc": 1.0}
    assert evaluator.confusion_matrix().sum() == labels.numel()


def test_ignored_pixels_are_not_counted():
    labels = torch.zeros(1, 8, 8, dtype=torch.int64)
    labels[0, :4] = 1
    wrong = 1 - labels  # every pixel wrong ...
    labels[0, :, :] = 255  # ... but every pixel but one row ignored
    labels[0, 0] = 0
    wrong[0, 0] = 0
    evaluator = SegmentationTask().build_evaluator(class_names=CLASSES, device=torch.device("cpu"), postprocess=None)
    evaluator.update(outputs={"logits": one_hot_logits(wrong, 3)}, batch={"labels": labels})
    metrics = evaluator.compute()
    assert metrics == {"mIoU": 1.0, "pixel_acc": 1.0}
    assert int(evaluator.confusion_matrix().sum()) == 8


def test_low_resolution_logits_are_upsampled_to_the_labels():
    labels = torch.zeros(1, 16, 16, dtype=torch.int64)
    labels[0, :, 8:] = 1
    coarse = one_hot_logits(labels[:, ::4, ::4], 3)  # (1, 3, 4, 4)
    evaluator = SegmentationTask().build_evaluator(class_names=CLASSES, device=torch.device("cpu"), postprocess=None)
    evaluator.update(outputs={"logits": coarse}, batch={"labels": labels})
    assert evaluator.compute()["pixel_acc"] > 0.85


def test_report_lists_per_class_iou():
    labels = torch.zeros(1, 4, 4, dtype=torch.int64)
    labels[0, :2] = 1
    predicted = labels.clone()
    predicted[0, 0, 0] = 0  # one pixel of class 1 predicted as background
    task = SegmentationTask()
    evaluator = task.build_evaluator(class_names=CLASSES, device=torch.device("cpu"), postprocess=None)
    evaluator.update(outputs={"logits": one_hot_logits(predicted, 3)}, batch={"labels": labels})
    iou = evaluator.per_class_iou()
    assert iou["background"] == pytest.approx(8 / 9) and iou["a"] == pytest.approx(7 / 8)
    assert iou["b"] != iou["b"]  # NaN: in neither ground truth nor predictions
    table = task.report(evaluator)
    assert isinstance(table, Table) and table.row_count == 3
    assert [cell for cell in table.columns[0].cells] == CLASSES


def test_predicted_masks_are_class_maps_at_the_input_size():
    from trainer.tasks.segmentation import predicted_masks

    labels = torch.zeros(2, 8, 8, dtype=torch.int64)
    labels[1, 4:] = 2
    masks = predicted_masks(one_hot_logits(labels[:, ::2, ::2], 3), (8, 8))
    assert masks.shape == (2, 8, 8) and masks.dtype == torch.int64
    assert (masks == labels).all()


# --- the ignore index: 255 in masks, so in every loss --------------------------------------------


def test_losses_get_the_tasks_ignore_index_unless_the_recipe_sets_it():
    defaults = SegmentationTask.loss_defaults
    module = build_loss_module([{"criterion": "cross_entropy"}, {"criterion": "focal_loss"}], defaults=defaults)
    assert [entry.criterion.ignore_index for entry in module.entries] == [255, 255]
    # a criterion without the option is built as before; an explicit value wins
    module = build_loss_module([{"criterion": "pidnet_loss", "ignore_index": 255}], defaults=defaults)
    assert module.entries[0].criterion.options["ignore_index"] == 255
    assert build_loss_module([{"criterion": "cross_entropy"}]).entries[0].criterion.ignore_index == -100


def test_ignored_pixels_cost_nothing_in_cross_entropy_with_the_default():
    module = build_loss_module([{"criterion": "cross_entropy"}], defaults=SegmentationTask.loss_defaults)
    labels = torch.full((1, 4, 4), 255)
    labels[0, 0, 0] = 1
    logits = torch.zeros(1, 3, 4, 4, requires_grad=True)
    total, _ = module({"logits": logits, "labels": labels})
    assert total.item() == pytest.approx(torch.log(torch.tensor(3.0)).item())


@pytest.mark.parametrize("criterion", ["cross_entropy", "focal_loss"])
def test_segmentation_recipe_with_another_ignore_index_is_an_error(write_recipe, criterion):
    recipe = {
        "task": "segmentation",
        "data": {"format": "shapes", "train": {"num_images": 4}, "val": {"num_images": 4}},
        "model": {"architecture": {"backbone": {"name": "resnet18"}},
                  "losses": [{"criterion": criterion, "ignore_index": -100}]},
    }
    with pytest.raises(RecipeError, match=r"model\.losses\[0\]\.ignore_index.*fixes ignore_index to 255"):
        load_recipe([write_recipe(recipe)])
    recipe["model"]["losses"][0]["ignore_index"] = 255
    load_recipe([write_recipe(recipe)])
    del recipe["model"]["losses"][0]["ignore_index"]
    load_recipe([write_recipe(recipe)])


# --- the boundary target follows the augmented labels --------------------------------------------


def _id_changes(labels: torch.Tensor) -> torch.Tensor:
    """Pixels with a 4-neighbour of another id, (B, H, W) bool."""
    changes = torch.zeros_like(labels, dtype=torch.bool)
    horizontal = labels[:, :, 1:] != labels[:, :, :-1]
    vertical = labels[:, 1:, :] != labels[:, :-1, :]
    changes[:, :, 1:] |= horizontal
    changes[:, :, :-1] |= horizontal
    changes[:, 1:, :] |= vertical
    changes[:, :-1, :] |= vertical
    return changes


def _within(mask: torch.Tensor, distance: int) -> torch.Tensor:
    size = 2 * distance + 1
    return F.max_pool2d(mask.float()[:, None], size, stride=1, padding=distance)[:, 0] > 0


def test_boundary_target_in_the_loss_aligns_with_augmented_label_edges(monkeypatch):
    task = SegmentationTask()
    base = ShapesDataset(task="segmentation", split="train", num_images=6, image_size=40)
    transform, _ = build_transforms(
        [{"name": "hflip", "p": 1.0}, {"name": "random_crop", "size": 48, "pad_if_needed": True}], task="segmentation"
    )
    augmented = AugmentedDataset(dataset=base, transform=transform, seed=3)
    batch = task.collate([augmented[(0, i)] for i in range(len(base))])
    labels = batch["labels"]
    assert (labels == 255).any()  # the crop padded the label with ignore

    seen = []
    original = pidnet_module.boundary_target

    def spy(labels_in, **options):
        seen.append(labels_in.clone())
        return original(labels_in, **options)

    monkeypatch.setattr(pidnet_module, "boundary_target", spy)
    logits = torch.zeros(len(base), 5, 6, 6, requires_grad=True)
    boundary = torch.zeros(len(base), 1, 6, 6, requires_grad=True)
    parts = pidnet_module.pidnet_loss(logits, logits, boundary, labels, min_kept=64)
    assert len(seen) == 1 and torch.equal(seen[0], labels)  # made from the augmented labels, in the loss
    assert parts["boundary"] > 0

    edge = boundary_target(labels) > 0
    # Canny on ids keeps the stronger of two steps closer than 2 px (e.g. a shape, one row of
    # background, then the 255 padding): the official behaviour, so count changes away from the pad
    changes = _id_changes(labels) & ~_within(labels == 255, 3)
    assert changes.sum() > 100
    assert edge[changes].all()  # every id change of the augmented label lies in the band
    assert _within(_id_changes(labels), 2)[edge].all()  # and the band is at most 2 px from one
    # a target that missed the flip (computed before it, or in a separate random pass) is misaligned
    misaligned = boundary_target(labels.flip(-1)) > 0
    assert (~misaligned[changes]).float().mean() > 0.3


def test_random_scale_moves_the_mask_with_the_image():
    transform, _ = build_transforms([{"name": "random_scale", "scale": [0.5, 2.0]}], task="segmentation")
    mask = torch.zeros(20, 30, dtype=torch.int64)
    mask[5:15, 10:20] = 2
    mask[0, 0] = 255
    image = tv_tensors.Image((mask[None].repeat(3, 1, 1) * 100).clamp(max=255).to(torch.uint8))
    sizes = set()
    for seed in range(6):
        torch.manual_seed(seed)
        out = transform({"image": image, "mask": tv_tensors.Mask(mask), "image_id": 0})
        height, width = out["mask"].shape
        sizes.add((height, width))
        assert out["image"].shape[-2:] == (height, width) and 10 <= height <= 40 and abs(width / height - 1.5) < 0.1
        assert set(out["mask"].unique().tolist()) <= {0, 2, 255}  # nearest: no invented ids
        inside = out["mask"] == 2
        assert (out["image"][0][inside] > 50).float().mean() > 0.95  # the shape stays under its mask (edges blend)
    assert len(sizes) > 1
    with pytest.raises(DataError, match="0 < low <= high"):
        build_transforms([{"name": "random_scale", "scale": [2.0, 1.0]}], task="segmentation")
