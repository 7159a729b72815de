import pytest
import torch
from torchvision import tv_tensors

from trainer.data.errors import DataError
from trainer.data.mosaic import MosaicMixupDataset
from trainer.data.shapes import ShapesDataset


def shapes(task="detection"):
    return ShapesDataset(task=task, split="train", num_images=12, image_size=40)


def check_contract(sample, size):
    assert isinstance(sample["image"], tv_tensors.Image) and sample["image"].dtype == torch.uint8
    assert sample["image"].shape == (3, *size)
    boxes = sample["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and tuple(boxes.canvas_size) == size
    assert boxes.dtype == torch.float32
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= size[1]).all() and (boxes[:, 3] <= size[0]).all()
    assert (boxes[:, 2:] - boxes[:, :2] >= 2).all()
    assert sample["labels"].dtype == torch.int64 and sample["iscrowd"].dtype == torch.bool
    assert len(boxes) == len(sample["labels"]) == len(sample["iscrowd"])
    assert isinstance(sample["image_id"], int)


@pytest.mark.parametrize("mixup_prob", [0.0, 1.0])
def test_mosaic_contract(mixup_prob):
    data = MosaicMixupDataset(shapes(), output_size=[48, 64], mixup_prob=mixup_prob)
    torch.manual_seed(0)
    counts = []
    for index in range(len(data)):
        sample = data[index]
        check_contract(sample, (48, 64))
        counts.append(len(sample["labels"]))
    assert max(counts) > 4  # several images' boxes in one sample


def test_deterministic_given_torch_seed():
    data = MosaicMixupDataset(shapes(), output_size=48)
    torch.manual_seed(3)
    first = [data[i] for i in range(4)]
    torch.manual_seed(3)
    second = [data[i] for i in range(4)]
    for a, b in zip(first, second):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["boxes"], b["boxes"])


def test_disabled_passes_samples_through():
    base = shapes()
    data = MosaicMixupDataset(base, output_size=48, enabled=False)
    assert torch.equal(data[2]["image"], base[2]["image"])
    data.set_enabled(True)
    assert data.enabled and data[2]["image"].shape == (3, 48, 48)
    data.set_enabled(False)
    assert torch.equal(data[2]["image"], base[2]["image"])
    assert MosaicMixupDataset(base, output_size=48, mosaic_prob=0.0)[1]["image"].shape == (3, 40, 40)


def test_set_enabled_reaches_persistent_workers():
    data = MosaicMixupDataset(shapes(), output_size=48)
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, num_workers=1, persistent_workers=True, collate_fn=lambda sample: sample
    )
    assert {tuple(s["image"].shape) for s in loader} == {(3, 48, 48)}
    data.set_enabled(False)
    assert {tuple(s["image"].shape) for s in loader} == {(3, 40, 40)}


def test_rejects_other_tasks_and_bad_options():
    with pytest.raises(DataError, match="detection"):
        MosaicMixupDataset(shapes("segmentation"), output_size=48)
    with pytest.raises(DataError, match="mixup_prob"):
        MosaicMixupDataset(shapes(), output_size=48, mixup_prob=2.0)
