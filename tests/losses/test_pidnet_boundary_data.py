"""The official PIDNet boundary target as a data step (`boundary_target` transform, `boundary_target: data`).

The reference below follows the official `gen_sample` step by step in numpy (cv2.Canny on an id
map written out: Sobel 3x3 with replicated border, L1 magnitude, non-maximum suppression in four
sectors; then `edge_pad`, a 4x4 dilation with anchor (2, 2), `> 50`); it was checked equal to
OpenCV 5.0.0's `cv2.Canny` + `cv2.dilate` on 200 random id maps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from trainer.data.edge_target import BoundaryTargetStep
from trainer.data.transforms import build_transforms
from trainer.losses.pidnet import PIDNetLoss, weighted_bce
from trainer.tasks.segmentation import SegmentationTask

TAN_22_5, TAN_67_5 = np.tan(np.deg2rad(22.5)), np.tan(np.deg2rad(67.5))


def official_canny(label: np.ndarray) -> np.ndarray:
    """cv2.Canny(label, 0.1, 0.2) for an id map: every non-zero magnitude passes both thresholds."""
    height, width = label.shape
    padded = np.pad(label.astype(np.int64), 1, mode="edge")

    def at(di, dj):
        return padded[1 + di : 1 + di + height, 1 + dj : 1 + dj + width]

    dx = (at(-1, 1) - at(-1, -1)) + 2 * (at(0, 1) - at(0, -1)) + (at(1, 1) - at(1, -1))
    dy = (at(1, -1) - at(-1, -1)) + 2 * (at(1, 0) - at(-1, 0)) + (at(1, 1) - at(-1, 1))
    magnitude = np.abs(dx) + np.abs(dy)
    around = np.pad(magnitude, 1)

    def near(di, dj):
        return around[1 + di : 1 + di + height, 1 + dj : 1 + dj + width]

    horizontal = np.abs(dy) < TAN_22_5 * np.abs(dx)
    vertical = ~horizontal & (np.abs(dy) > TAN_67_5 * np.abs(dx))
    diagonal = ~horizontal & ~vertical
    same_sign = (dx < 0) == (dy < 0)
    keep_diagonal = np.where(
        same_sign,
        (magnitude > near(-1, -1)) & (magnitude > near(1, 1)),
        (magnitude > near(-1, 1)) & (magnitude > near(1, -1)),
    )
    keep = (
        (horizontal & (magnitude > near(0, -1)) & (magnitude >= near(0, 1)))
        | (vertical & (magnitude > near(-1, 0)) & (magnitude >= near(1, 0)))
        | (diagonal & keep_diagonal)
    )
    return np.where(keep & (magnitude > 0), 255, 0).astype(np.uint8)


def official_edge(label: np.ndarray, *, edge_pad: bool = True, edge_size: int = 4) -> np.ndarray:
    """datasets/base_dataset.py gen_sample (commit 4c158cf), before the augmentation."""
    edge = official_canny(label)
    if edge_pad:
        edge = np.pad(edge[6:-6, 6:-6], ((6, 6), (6, 6)), mode="constant")
    # cv2.dilate, kernel ones((k, k)), anchor (k // 2, k // 2): out[y, x] = max edge[y + i - k // 2, x + j - k // 2]
    height, width = edge.shape
    padded = np.pad(edge, ((edge_size // 2, edge_size), (edge_size // 2, edge_size)))
    dilated = np.zeros_like(edge)
    for i in range(edge_size):
        for j in range(edge_size):
            dilated = np.maximum(dilated, padded[i : i + height, j : j + width])
    return (dilated > 50).astype(np.uint8)


def sample_label(height: int = 36, width: int = 44) -> np.ndarray:
    label = np.zeros((height, width), dtype=np.uint8)
    label[4:20, 3:30] = 1
    label[12:33, 20:41] = 2
    rows, cols = np.mgrid[:height, :width]
    label[(rows - 24) ** 2 + (cols - 12) ** 2 < 49] = 3  # a disc: every gradient direction
    label[30:, :8] = 255  # ignore: its border is an edge, as officially
    label[0:3, 35:] = 4  # near the border: dropped by edge_pad
    return label


def coordinate_sample(label: np.ndarray) -> dict:
    """Image channels hold row + 1 and column + 1 (0 only where a transform pads)."""
    height, width = label.shape
    rows, cols = np.mgrid[:height, :width]
    image = np.stack([rows + 1, cols + 1, np.zeros_like(rows)]).astype(np.uint8)
    return {"image": tv_tensors.Image(torch.from_numpy(image)), "mask": tv_tensors.Mask(torch.from_numpy(label)),
            "image_id": 0}


def test_step_equals_the_official_target():
    label = sample_label()
    expected = official_edge(label)
    assert expected.sum() > 100 and expected[:4].sum() == 0  # the class-4 strip at the top is dropped
    out = BoundaryTargetStep()(coordinate_sample(label))
    assert out["boundary_labels"].dtype == torch.uint8
    assert np.array_equal(out["boundary_labels"].numpy(), expected)
    no_pad = BoundaryTargetStep(border=0, dilation=4)(coordinate_sample(label))["boundary_labels"]
    assert np.array_equal(no_pad.numpy(), official_edge(label, edge_pad=False))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_moves_with_crop_pad_and_flip(seed):
    label = sample_label()
    expected = official_edge(label)
    transform, _ = build_transforms(
        [{"name": "boundary_target"}, {"name": "random_crop", "size": [40, 32], "pad_if_needed": True},
         {"name": "hflip", "p": 1.0}],
        task="segmentation",
    )
    torch.manual_seed(seed)
    out = transform(coordinate_sample(label))
    rows, cols = out["image"][0].long() - 1, out["image"][1].long() - 1
    padded = rows < 0
    assert padded.any() and (~padded).any()  # 36 rows padded to 40
    batch = SegmentationTask().collate([out])
    boundary = batch["boundary_labels"][0]
    assert boundary.dtype == torch.uint8 and torch.equal(boundary[padded], torch.zeros_like(boundary[padded]))
    source = torch.from_numpy(expected)[rows[~padded], cols[~padded]]
    assert torch.equal(boundary[~padded], source)  # same crop, same flip as the image
    assert torch.equal(batch["labels"][0][~padded], torch.from_numpy(label).long()[rows[~padded], cols[~padded]])


def test_resize_is_nearest_as_the_official_rescale():
    label = sample_label()
    expected = official_edge(label)
    transform, _ = build_transforms([{"name": "boundary_target"}, {"name": "resize", "size": [54, 66]}],
                                    task="segmentation")
    out = transform(coordinate_sample(label))["boundary_labels"].numpy()
    # cv2.resize INTER_NEAREST: source index floor(destination index * source size / destination size)
    rows = np.floor(np.arange(54) * 36 / 54).astype(int)
    cols = np.floor(np.arange(66) * 44 / 66).astype(int)
    assert np.array_equal(out, expected[rows][:, cols])


def test_loss_reads_the_data_target_and_refuses_a_mismatch():
    torch.manual_seed(0)
    labels = torch.from_numpy(sample_label()).long()[None]
    edge = torch.from_numpy(official_edge(sample_label()))[None]
    logits = torch.randn(1, 5, 9, 11)
    boundary = torch.randn(1, 1, 9, 11, requires_grad=True)
    inputs = {"logits_p": logits, "logits": logits, "boundary_logits": boundary, "labels": labels}
    parts = PIDNetLoss(boundary_target="data", min_kept=64)(**inputs, boundary_labels=edge)
    upsampled = torch.nn.functional.interpolate(boundary, size=labels.shape[-2:], mode="bilinear", align_corners=True)
    torch.testing.assert_close(parts["boundary"], 20.0 * weighted_bce(upsampled, edge))
    from_label = PIDNetLoss(min_kept=64)(**inputs)["boundary"]
    assert not torch.isclose(parts["boundary"], from_label)  # edge_pad: the two targets differ here
    with pytest.raises(ValueError, match=r"\{name: boundary_target\} first in augmentation.train"):
        PIDNetLoss(boundary_target="data")(**inputs)
    with pytest.raises(ValueError, match="set boundary_target: data"):
        PIDNetLoss()(**inputs, boundary_labels=edge)


def test_build_check_names_the_missing_step():
    from trainer.data.transforms import provided_batch_fields
    from trainer.losses.module import build_loss_module

    module = build_loss_module([{"criterion": "pidnet_loss", "boundary_target": "data"}])
    outputs_and_batch = {"logits_p", "logits", "boundary_logits", "images", "labels", "epoch"}
    (problem,) = module.missing_inputs(outputs_and_batch | provided_batch_fields([{"name": "hflip"}]))
    assert "model.losses[0] (pidnet_loss) needs 'boundary_labels'" in problem
    assert "{name: boundary_target} first in augmentation.train" in problem
    steps = [{"name": "boundary_target"}, {"name": "hflip"}]
    assert module.missing_inputs(outputs_and_batch | provided_batch_fields(steps)) == []
    label_mode = build_loss_module([{"criterion": "pidnet_loss"}])
    assert label_mode.missing_inputs(outputs_and_batch) == []
    (problem,) = label_mode.missing_inputs(outputs_and_batch | provided_batch_fields(steps))
    assert "boundary_target: label; set boundary_target: data to train on them, or remove the step" in problem


def test_recipe_with_the_step_builds_and_its_batches_carry_the_target(write_recipe):
    from trainer.components import load_builtin_components
    from trainer.engine.session import build_session
    from trainer.recipe import load_recipe

    load_builtin_components()
    recipe = {
        "task": "segmentation",
        "data": {"format": "shapes", "train": {"num_images": 2, "image_size": 32},
                 "val": {"num_images": 2, "image_size": 32}},
        "augmentation": {"train": [{"name": "boundary_target"}, {"name": "hflip"}], "val": []},
        "model": {"architecture": {"full": {"name": "pidnet", "size": "s"}},
                  "losses": [{"criterion": "pidnet_loss", "boundary_target": "data", "min_kept": 64}]},
        "training": {"epochs": 1, "batch_size": 2},
        "environment": {"num_workers": 0},
    }
    session = build_session(load_recipe([write_recipe(recipe)]), device=torch.device("cpu"))
    batch = next(iter(session.train_loader))
    assert batch["boundary_labels"].shape == batch["labels"].shape and batch["boundary_labels"].max() == 1
    outputs = session.model.train()(session.prepare_batch(batch)["images"])
    total, parts = session.loss_module({**batch, **outputs, "epoch": 0})
    assert parts["pidnet_loss/boundary"] > 0 and torch.isfinite(total)
