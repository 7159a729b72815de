"""`trainer predict` and `trainer export` end to end, per task: a tiny run (a few steps on 32 px
shapes) -> predict on image files of other sizes -> export ONNX (checked with onnxruntime)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torchvision import tv_tensors
from typer.testing import CliRunner

from trainer.cli import app
from trainer.data.shapes_generator import generate_sample

SIZE = 32
ARCHITECTURES = {
    "classification": ({"backbone": {"name": "resnet18"}}, [{"criterion": "cross_entropy"}], "normalize"),
    "detection": (
        {"backbone": {"name": "cspdarknet_nano"}, "neck": {"name": "pafpn", "depth": 0.33, "depthwise": True},
         "head": {"name": "anchor_free_decoupled", "depthwise": True}},
        [{"criterion": "yolox_loss"}], {"name": "normalize", "mean": [0, 0, 0], "std": [1, 1, 1]},
    ),
    "segmentation": ({"backbone": {"name": "resnet18"}, "head": {"name": "seg_head", "hidden_channels": 16}},
                     [{"criterion": "cross_entropy"}], "normalize"),
}


def tiny_recipe(task: str, **logging) -> dict:
    architecture, losses, normalize = ARCHITECTURES[task]
    normalize = {"name": "normalize"} if normalize == "normalize" else normalize
    return {
        "task": task,
        "data": {"format": "shapes", "train": {"num_images": 16, "image_size": SIZE},
                 "val": {"num_images": 8, "image_size": SIZE}},
        "augmentation": {"train": [normalize], "val": [normalize]},
        "model": {"architecture": architecture, "losses": losses},
        "training": {"epochs": 1, "batch_size": 8, "optimizer": {"name": "sgd", "lr": 0.01}},
        "logging": {"progress": "none", "plots": False, **logging},
        "environment": {"num_workers": 0, "device": "cpu"},
    }


def invoke(*arguments):
    return CliRunner().invoke(app, [str(a) for a in arguments])


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def trained(request, tmp_path_factory):
    task = request.param
    root = tmp_path_factory.mktemp(task)
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(task)))
    result = invoke("train", recipe, "--output-dir", root / "runs", "--name", "run")
    assert result.exit_code == 0, result.output
    images = root / "images"
    images.mkdir()
    for index, (height, width) in enumerate([(40, 56), (32, 32), (64, 48)]):
        sample = generate_sample(seed=7, index=index, image_size=max(height, width), max_shapes=2)
        Image.fromarray(sample.image[:height, :width]).save(images / f"img{index}.png")
    return task, root / "runs" / "run", images


def test_predict_writes_task_outputs(trained, tmp_path):
    task, run, images = trained
    out = tmp_path / "pred"
    result = invoke("predict", run, images, "--out", out, "--draw-threshold", "0.0")
    assert result.exit_code == 0, result.output
    sizes = {f"img{i}": Image.open(images / f"img{i}.png").size for i in range(3)}  # (width, height)
    predictions = json.loads((out / "predictions.json").read_text())
    for name, (width, height) in sizes.items():
        drawn = Image.open(out / "images" / f"{name}.png")
        assert drawn.size[0] / drawn.size[1] == pytest.approx(width / height)  # enlarged, same aspect
    if task == "classification":
        assert [p["image"] for p in predictions] == [f"images/img{i}.png" for i in range(3)]
        for entry in predictions:
            assert len(entry["top_k"]) == 4  # top-5 of 4 classes
            scores = [item["score"] for item in entry["top_k"]]
            assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-4)
            assert {item["class"] for item in entry["top_k"]} == {"circle", "square", "triangle", "diamond"}
    elif task == "detection":
        index = json.loads((out / "images.json").read_text())
        assert [image["id"] for image in index["images"]] == [0, 1, 2]
        assert [c["name"] for c in index["categories"]] == ["circle", "square", "triangle", "diamond"]
        by_id = {image["id"]: image for image in index["images"]}
        for image in index["images"]:
            assert (image["width"], image["height"]) == sizes[f"img{image['id']}"]
        for det in predictions:
            assert set(det) == {"image_id", "category_id", "bbox", "score"}
            x, y, w, h = det["bbox"]
            image = by_id[det["image_id"]]
            assert 0 <= x and 0 <= y and w >= 0 and h >= 0
            assert x + w <= image["width"] + 1e-3 and y + h <= image["height"] + 1e-3
            assert 0 <= det["category_id"] < 4 and 0 <= det["score"] <= 1
    else:
        for name, (width, height) in sizes.items():
            mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
            assert mask.shape == (height, width) and mask.dtype == np.uint8
            assert set(np.unique(mask).tolist()) <= set(range(5))
        for entry in predictions:
            assert sum(entry["classes"].values()) == pytest.approx(1.0, abs=1e-3)


def test_export_onnx_checked_with_onnxruntime(trained, tmp_path):
    task, run, _ = trained
    out = tmp_path / "model.onnx"
    result = invoke("export", run, "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    assert "max |difference|" in result.output
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    assert meta["task"] == task and meta["input"]["shape"] == ["batch", 3, SIZE, SIZE]
    names = [output["name"] for output in meta["outputs"]]
    expected = {"classification": ["logits"], "segmentation": ["logits"],
                "detection": ["box_preds", "obj_logits", "cls_logits", "grid_xy", "strides"]}[task]
    assert names == expected
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": np.random.rand(3, 3, SIZE, SIZE).astype(np.float32) * 255})
    batched = [output["batched"] for output in meta["outputs"]]
    assert all(o.shape[0] == 3 for o, is_batched in zip(outputs, batched) if is_batched)  # dynamic batch


def test_export_torchscript_and_checkpoint_target(trained, tmp_path):
    task, run, images = trained
    if task != "classification":
        pytest.skip("one task is enough for the TorchScript path and a checkpoint as the target")
    checkpoint = run / "checkpoints" / "last.pt"
    result = invoke("export", checkpoint, "--format", "torchscript", "--out", tmp_path / "m.pt")
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        loaded = torch.jit.load(str(tmp_path / "m.pt"))
    assert loaded(torch.zeros(2, 3, SIZE, SIZE))[0].shape == (2, 4)
    result = invoke("predict", checkpoint, images / "img0.png", "--out", tmp_path / "p", "--top-k", "2")
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "p" / "predictions.json").read_text())[0]["top_k"]) == 2


def test_bad_inputs_exit_2(trained, tmp_path):
    task, run, images = trained
    if task != "classification":
        pytest.skip("input checks do not depend on the task")
    result = invoke("predict", run, tmp_path / "missing.png", "--out", tmp_path / "p")
    assert result.exit_code == 2 and "not found" in result.output and "Traceback" not in result.output
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result = invoke("predict", run, tmp_path / "broken.png", "--out", tmp_path / "p")
    assert result.exit_code == 2 and "broken.png" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("predict", tmp_path / "empty", images, "--out", tmp_path / "p")
    assert result.exit_code == 2 and "not a run directory" in result.output
    result = invoke("export", run, "--format", "tflite")
    assert result.exit_code == 2 and "onnx" in result.output
    result = invoke("export", tmp_path / "nothing", "--format", "onnx")
    assert result.exit_code == 2


def test_predictions_map_back_through_letterbox_and_resize():
    from trainer.data.transforms import build_transforms
    from trainer.tasks.predictions import boxes_to_original, mask_to_original

    image = tv_tensors.Image(torch.zeros(3, 50, 100, dtype=torch.uint8))
    corners = tv_tensors.BoundingBoxes(torch.tensor([[0.0, 0.0, 100.0, 50.0]]), format="XYXY", canvas_size=(50, 100),
                                       clamping_mode=None)
    for transforms, expected in (([{"name": "letterbox", "size": 64}], [0, 0, 64, 32]),
                                 ([{"name": "resize", "size": [64, 64]}], [0, 0, 64, 64]),
                                 ([{"name": "center_crop", "size": 40}], [-30, -5, 70, 45])):
        transform, _ = build_transforms(transforms)
        region = tuple(transform({"image": image, "boxes": corners})["boxes"].reshape(4).tolist())
        assert region == pytest.approx(expected)
    # letterbox 100x50 -> 64x32 (+ padding): a box in input pixels maps back by 100/64
    back = boxes_to_original(torch.tensor([[6.4, 3.2, 32.0, 16.0]]), (0, 0, 64, 32), 50, 100)
    assert back.tolist()[0] == pytest.approx([10.0, 5.0, 50.0, 25.0])
    mask = torch.zeros(64, 64, dtype=torch.long)
    mask[:32, :] = 1  # letterboxed content in the top half, padding below
    original = mask_to_original(mask, (0, 0, 64, 32), 50, 100)
    assert original.shape == (50, 100) and bool((original == 1).all())
    # a centre crop saw only the middle: what it cut away is 255
    cropped = mask_to_original(torch.ones(40, 40, dtype=torch.long), (-30, -5, 70, 45), 50, 100)
    assert bool((cropped[5:45, 30:70] == 1).all()) and int((cropped == 255).sum()) == 50 * 100 - 40 * 40


def test_export_keeps_unbatched_outputs_of_retinanet(tmp_path):
    """RetinaNet's `anchors` (A, 4) has no batch axis: exported as is, the batched outputs get a dynamic axis."""
    from trainer.commands.export import ExportWrapper, _batched, _check, export_onnx, run_onnx
    from trainer.components import load_builtin_components
    from trainer.models.build import build_model

    load_builtin_components()
    model = build_model(task="detection", architecture={"backbone": {"name": "resnet18"}, "neck": {"name": "fpn"}},
                        criteria=["retinanet_loss"], num_classes=3).eval()
    names = ["cls_logits", "box_regression", "anchors"]
    wrapper = ExportWrapper(model, mean=torch.zeros(3), std=torch.ones(3), names=names).eval()
    batched = _batched(wrapper, (SIZE, SIZE))
    assert batched == [True, True, False]
    export_onnx(wrapper, torch.rand(1, 3, SIZE, SIZE) * 255, tmp_path / "r.onnx", batched)
    images = torch.rand(2, 3, SIZE, SIZE) * 255
    with torch.no_grad():
        reference = wrapper(images)
    for name, expected, got in zip(names, reference, run_onnx(tmp_path / "r.onnx", images)):
        assert _check(name, expected, got) < 1e-3


def test_outputs_are_checked_before_any_work(trained, tmp_path):
    task, run, images = trained
    if task != "classification":
        pytest.skip("output checks do not depend on the task")
    result = invoke("eval", run, "--json", tmp_path / "evals" / "a.json")  # a missing folder is made
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "evals" / "a.json").read_text())["task"] == "classification"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for arguments in (("eval", run, "--json", blocker / "a.json"), ("predict", run, images, "--out", blocker),
                      ("export", run, "--format", "onnx", "--out", blocker / "m.onnx")):
        result = invoke(*arguments)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert str(blocker) in result.output and ("--out" in result.output or "--json" in result.output)
        assert "max |difference|" not in result.output and "predictions for" not in result.output  # no work done
    first = invoke("export", run, "--format", "torchscript")
    assert first.exit_code == 0, first.output
    exported = run / "export" / "best.torchscript.pt"
    before = exported.stat().st_mtime_ns
    again = invoke("export", run, "--format", "torchscript")
    assert again.exit_code == 2 and "--force" in again.output and exported.stat().st_mtime_ns == before
    out = tmp_path / "pred"
    assert invoke("predict", run, images, "--out", out).exit_code == 0
    result = invoke("predict", run, images, "--out", out)
    assert result.exit_code == 2 and "--force" in result.output
    assert invoke("predict", run, images, "--out", out, "--force").exit_code == 0


def test_predict_with_a_head_for_other_classes_says_so(trained, tmp_path):
    task, run, images = trained
    if task != "classification":
        pytest.skip("one task is enough")
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["class_names"] = state["class_names"][:3]  # the recipe it carries now builds a 3-class head
    torch.save(state, tmp_path / "three.pt")
    result = invoke("predict", tmp_path / "three.pt", images, "--out", tmp_path / "p")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "4 classes in the checkpoint, 3 in the recipe" in result.output
    assert not (tmp_path / "p").exists()


def test_export_input_size_comes_from_the_val_transforms():
    from trainer.commands.export import input_size
    from trainer.data.transforms import build_transforms
    from trainer.engine.inference import TrainedModel
    from trainer.recipe import recipe_from_dict

    recipe = recipe_from_dict({
        "task": "classification", "data": {"format": "image_folder", "train": {"root": "t"}, "val": {"root": "v"}},
        "augmentation": {"val": [{"name": "resize", "size": 160}, {"name": "center_crop", "size": 128}]},
        "model": {"architecture": {"backbone": {"name": "resnet18"}}, "losses": [{"criterion": "cross_entropy"}]},
    })
    transform, _ = build_transforms(recipe.augmentation.val)
    trained = TrainedModel(recipe=recipe, task=None, class_names=["a"], model=None, normalizer=None,
                           transform=transform, checkpoint_path=None, run_dir=None, device=torch.device("cpu"))
    assert input_size(trained, None) == (128, 128)  # not the former 640
    assert input_size(trained, (96, 64)) == (96, 64)
