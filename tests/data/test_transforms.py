import inspect

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from trainer.data.errors import DataError
from trainer.data.transforms import NormalizeParams, build_transforms
from trainer.engine.inference import Normalizer
from trainer.registry import TRANSFORMS, UnknownNameError


def detection_sample(height=20, width=30):
    return {
        "image": tv_tensors.Image(torch.randint(0, 256, (3, height, width), dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor([[2.0, 4, 12, 10], [20, 0, 30, 20]]), format="XYXY", canvas_size=(height, width)
        ),
        "labels": torch.tensor([1, 2]),
        "iscrowd": torch.tensor([False, True]),
        "image_id": 5,
    }


def segmentation_sample(height=20, width=30):
    mask = torch.zeros(height, width, dtype=torch.int64)
    mask[5:15, 5:20] = 3
    mask[0, :] = 255
    return {
        "image": tv_tensors.Image(torch.randint(0, 256, (3, height, width), dtype=torch.uint8)),
        "mask": tv_tensors.Mask(mask),
        "image_id": 0,
    }


def classification_sample():
    return {"image": tv_tensors.Image(torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)), "label": 2}


SAMPLES = {"classification": classification_sample, "detection": detection_sample, "segmentation": segmentation_sample}


def test_boxes_move_with_hflip_and_resize():
    pipeline, normalize = build_transforms(
        [{"name": "hflip", "p": 1.0}, {"name": "resize", "size": [40, 60]}], task="detection"
    )
    assert normalize is None
    out = pipeline(detection_sample())
    expected = torch.tensor([[36.0, 8, 56, 20], [0, 0, 20, 40]])
    torch.testing.assert_close(out["boxes"].as_subclass(torch.Tensor), expected)
    assert out["image"].shape == (3, 40, 60) and out["image"].dtype == torch.uint8
    assert out["labels"].tolist() == [1, 2] and out["iscrowd"].tolist() == [False, True] and out["image_id"] == 5


def test_sanitize_appended_for_detection_drops_labels_and_iscrowd():
    pipeline, _ = build_transforms([{"name": "center_crop", "size": [20, 10]}], task="detection", sanitize_boxes=True)
    assert isinstance(pipeline.transforms[-1], v2.SanitizeBoundingBoxes)
    out = pipeline(detection_sample())  # crop x in [10, 20): box 0 keeps 2 px, box 1 none
    assert out["labels"].tolist() == [1] and out["iscrowd"].tolist() == [False] and len(out["boxes"]) == 1
    pipeline, _ = build_transforms([{"name": "center_crop", "size": [20, 6]}], task="detection", sanitize_boxes=True)
    out = pipeline(detection_sample())  # crop x in [12, 18): both boxes leave
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,) and out["iscrowd"].shape == (0,)


@pytest.mark.parametrize(
    "entries",
    [
        [{"name": "resize", "size": [33, 47]}],
        [{"name": "letterbox", "size": 40}],
        [{"name": "random_zoom_out", "p": 1.0, "fill": 114}],
        [{"name": "random_crop", "size": 32, "pad_if_needed": True}],
        [{"name": "random_resized_crop", "size": 24}],
    ],
)
def test_masks_stay_integer_with_nearest(entries):
    pipeline, _ = build_transforms(entries, task="segmentation")
    out = pipeline(segmentation_sample())
    assert isinstance(out["mask"], tv_tensors.Mask) and out["mask"].dtype == torch.int64
    assert set(out["mask"].unique().tolist()) <= {0, 3, 255}
    assert out["mask"].shape == out["image"].shape[-2:]


def test_letterbox_pads_right_and_bottom():
    pipeline, _ = build_transforms([{"name": "letterbox", "size": 60, "fill": 7}], task="detection",
                                   sanitize_boxes=True)
    out = pipeline(detection_sample())
    assert out["image"].shape == (3, 60, 60)
    assert (out["image"][:, 40:, :] == 7).all()
    torch.testing.assert_close(out["boxes"].as_subclass(torch.Tensor)[0], torch.tensor([4.0, 8, 24, 20]))


def test_unknown_transform_and_option_did_you_mean():
    with pytest.raises(UnknownNameError, match="did you mean 'hflip'"):
        build_transforms([{"name": "hflp"}])
    with pytest.raises(DataError, match=r"augmentation\[1\].*no option 'probability'") as info:
        build_transforms([{"name": "vflip"}, {"name": "hflip", "probability": 0.5}])
    with pytest.raises(DataError, match="needs option 'size'"):
        build_transforms([{"name": "resize"}])
    with pytest.raises(DataError, match="classification only"):
        build_transforms([{"name": "trivial_augment"}], task="detection", sanitize_boxes=True)
    assert info.value is not None


def test_normalize_returned_separately():
    pipeline, params = build_transforms([{"name": "hflip"}, {"name": "normalize"}])
    assert not any(isinstance(t, v2.Normalize) for t in pipeline.transforms)
    assert params == NormalizeParams(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    expected = (1.0 - torch.tensor(params.mean)) / torch.tensor(params.std)
    normalizer = Normalizer.build(params, torch.device("cpu"))  # what the engine applies on the device
    torch.testing.assert_close(normalizer(images)[0, :, 0, 0], expected)
    torch.testing.assert_close(Normalizer.build(None, torch.device("cpu"))(images), torch.ones(2, 3, 4, 4))
    _, mmdet = build_transforms(
        [{"name": "normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}]
    )
    assert mmdet.mean == pytest.approx(params.mean) and mmdet.std == pytest.approx(params.std)
    with pytest.raises(DataError, match="must be the last"):
        build_transforms([{"name": "normalize"}, {"name": "hflip"}])


def test_random_erasing_keeps_uint8_and_targets():
    for value in (0, "random"):
        pipeline, _ = build_transforms([{"name": "random_erasing", "p": 1.0, "value": value}], task="segmentation")
        sample = segmentation_sample()
        out = pipeline(sample)
        assert out["image"].dtype == torch.uint8 and torch.equal(out["mask"], sample["mask"])
        assert not torch.equal(out["image"], sample["image"])


def _required_options(name):
    parameters = inspect.signature(TRANSFORMS.get(name)).parameters
    return {key: 16 for key, parameter in parameters.items() if parameter.default is inspect.Parameter.empty}


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_every_transform_runs_on_its_tasks(name):
    tasks = TRANSFORMS.meta(name).get("tasks") or tuple(SAMPLES)
    for task in tasks:
        torch.manual_seed(0)
        pipeline, _ = build_transforms([{"name": name, **_required_options(name)}], task=task)
        out = pipeline(SAMPLES[task]())
        assert out["image"].dtype == torch.uint8 and out["image"].shape[0] == 3
        if task == "segmentation":
            assert out["mask"].dtype == torch.int64 and out["mask"].shape == out["image"].shape[-2:]
        if task == "detection":
            assert len(out["boxes"]) == len(out["labels"]) == len(out["iscrowd"])


def test_pipelines_pickle_for_worker_processes():
    import pickle

    entries = [{"name": "letterbox", "size": 32}, {"name": "random_zoom_out"}, {"name": "random_erasing"}]
    pipeline, _ = build_transforms(entries, task="detection", sanitize_boxes=True)
    restored = pickle.loads(pickle.dumps(pipeline))
    assert len(restored(detection_sample())["labels"]) <= 2
