"""`trainer export RUN_DIR|CHECKPOINT --format onnx|torchscript [--out FILE] [--force]`.

The exported model takes `images`: float32 (B, 3, H, W) RGB pixel values 0..255, already through
the recipe's val geometry (resize / letterbox; H, W as printed), and applies the recipe's
normalisation itself. It returns the eval-mode outputs as a tuple in a fixed order, named in the
ONNX graph and in the sidecar `FILE.json` (e.g. `best.onnx.json`) (classification: `logits`; YOLOX: `box_preds`,
`obj_logits`, `cls_logits`, `grid_xy`, `strides`; RetinaNet: `cls_logits`, `box_regression`,
`anchors`; segmentation: `logits`). The batch axis is dynamic; decoding and NMS are not part of
the graph (see trainer/tasks/detection_postprocess.py).

After writing, the file is loaded back (onnxruntime, or torch.jit.load) and run on a random batch
of 2 (the export traced batch 1, so this also checks the dynamic batch); the command fails when
an output differs from PyTorch by more than 1e-3 x max(1, max |output|).

The input size is what the recipe's val transforms make of an image of the data's size (the
`image_size` of the val data set, else the size of the last fixed-size val transform); `--image-size`
overrides it. FILE and its sidecar are checked before any work and never overwritten without `--force`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision import tv_tensors

from trainer.engine.inference import TrainedModel, load_trained, locate, usage_error
from trainer.engine.output_paths import output_file
from trainer.engine.reporting import console
from trainer.ops import normalize_images

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
TOLERANCE = 1e-3
OPSET = 17
FIXED_SIZE_TRANSFORMS = ("letterbox", "resize", "random_resized_crop", "center_crop", "random_crop")


class ExportFailed(Exception):
    """The exported model does not reproduce the PyTorch outputs."""


class ExportWrapper(nn.Module):
    """0..255 images -> normalised -> model -> tuple of outputs in `names` order."""

    def __init__(self, model: nn.Module, *, mean: torch.Tensor, std: torch.Tensor, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = list(names)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(normalize_images(images / 255.0, mean=self.mean, std=self.std))
        return tuple(outputs[name] for name in self.names)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 8:
        raise usage_error(f"--image-size takes S or H,W (pixels, at least 8), got '{text}'", "--image-size")
    return (values[0], values[-1])


def input_size(trained: TrainedModel, override: tuple[int, int] | None) -> tuple[int, int]:
    """(H, W) of the network input: the val transforms applied to an image of the data's size."""
    if override is not None:
        return override
    height, width = _data_size(trained)
    image = tv_tensors.Image(torch.zeros(3, height, width, dtype=torch.uint8))
    out = trained.transform(image)
    return int(out.shape[-2]), int(out.shape[-1])


def _data_size(trained: TrainedModel) -> tuple[int, int]:
    """(H, W) of the images fed to the val transforms: the val data set's `image_size`, else the size of the
    last fixed-size val transform (the output size then does not depend on it)."""
    size = dict(trained.recipe.data.val).get("image_size")
    for entry in reversed(list(trained.recipe.augmentation.val)):
        if size is None and entry.get("name") in FIXED_SIZE_TRANSFORMS and entry.get("size") is not None:
            size = entry["size"]
    if size is None:
        raise usage_error("cannot tell the input size from the recipe's data.val or augmentation.val; "
                          "give --image-size", "--image-size")
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[-1]))


def _normalisation(trained: TrainedModel) -> tuple[torch.Tensor, torch.Tensor]:
    return trained.normalizer.mean.reshape(-1).cpu(), trained.normalizer.std.reshape(-1).cpu()


def _check(name: str, reference: torch.Tensor, exported: np.ndarray) -> float:
    reference = reference.detach().cpu().float().numpy()
    if reference.shape != exported.shape:
        raise ExportFailed(f"output {name}: shape {exported.shape} from the exported model, "
                           f"{reference.shape} from PyTorch")
    diff = float(np.abs(reference - exported).max()) if reference.size else 0.0
    limit = TOLERANCE * max(1.0, float(np.abs(reference).max()) if reference.size else 1.0)
    shape = str(tuple(reference.shape))
    console.print(f"  {name:<16} {shape:<22} max |difference| {diff:.2e} (limit {limit:.1e})", soft_wrap=True)
    if not diff <= limit:
        raise ExportFailed(f"output {name} differs from PyTorch by {diff:.3g} (limit {limit:.3g})")
    return diff


def _batched(wrapper: ExportWrapper, size: tuple[int, int]) -> list[bool]:
    """Which outputs have a batch axis (their first dimension follows the batch size)."""
    with torch.no_grad():
        one = wrapper(torch.zeros(1, 3, *size))
        two = wrapper(torch.zeros(2, 3, *size))
    return [a.ndim > 0 and a.shape[0] == 1 and b.shape[0] == 2 for a, b in zip(one, two)]


def export_onnx(wrapper: ExportWrapper, example: torch.Tensor, out: Path, batched: list[bool]) -> None:
    names = wrapper.names
    dynamic = {"images": {0: "batch"}}
    dynamic.update({name: {0: "batch"} for name, is_batched in zip(names, batched) if is_batched})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapper, (example,), str(out), dynamo=False, input_names=["images"], output_names=names,
            dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True,
        )


def run_onnx(path: Path, images: torch.Tensor) -> list[np.ndarray]:
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})


def export_torchscript(wrapper: ExportWrapper, example: torch.Tensor, out: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values; checked below
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
    traced.save(str(out))


def run_torchscript(path: Path, images: torch.Tensor) -> list[np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            outputs = loaded(images)
    return [output.numpy() for output in outputs]


def _checked_out(*, target: str, checkpoint: str | None, fmt: str, out: str | None, force: bool) -> Path:
    """--out, else `<run>/export/<checkpoint stem><suffix>` (or in the working folder), with its sidecar
    checked: writable, and not overwritten without --force."""
    if out is not None:
        path = Path(out)
    else:
        checkpoint_path, run_dir = locate(target, checkpoint)
        path = (run_dir / "export" if run_dir is not None else Path(".")) / f"{checkpoint_path.stem}{SUFFIX[fmt]}"
    output_file(path, option="--out", force=force)
    output_file(path.with_name(path.name + ".json"), option="--out", force=force)
    return path


def export_command(
    *, target: str, fmt: str, out: str | None = None, image_size: str | None = None, checkpoint: str | None = None,
    force: bool = False,
) -> Path:
    if fmt not in FORMATS:
        raise usage_error(f"unknown format '{fmt}' (choices: {', '.join(FORMATS)})", "--format")
    requested_size = _parse_size(image_size)
    path = _checked_out(target=target, checkpoint=checkpoint, fmt=fmt, out=out, force=force)
    trained = load_trained(target, device="cpu", checkpoint=checkpoint)
    size = input_size(trained, requested_size)
    mean, std = _normalisation(trained)
    with torch.no_grad():
        names = list(trained.model(torch.zeros(1, 3, *size)))
    wrapper = ExportWrapper(trained.model, mean=mean, std=std, names=names).eval()
    batched = _batched(wrapper, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randint(0, 256, (1, 3, *size), generator=torch.Generator().manual_seed(0)).float()
    (export_onnx(wrapper, example, path, batched) if fmt == "onnx" else export_torchscript(wrapper, example, path))
    images = torch.randint(0, 256, (2, 3, *size), generator=torch.Generator().manual_seed(1)).float()
    with torch.no_grad():
        reference = wrapper(images)
    console.print(f"checking {path} against PyTorch on a random batch of 2 ({size[0]}x{size[1]}):", soft_wrap=True,
                  markup=False)
    exported = run_onnx(path, images) if fmt == "onnx" else run_torchscript(path, images)
    worst = max(_check(name, ref, got) for name, ref, got in zip(names, reference, exported))
    metadata = {
        "format": fmt, "task": trained.recipe.task, "checkpoint": str(trained.checkpoint_path),
        "input": {"name": "images", "shape": ["batch", 3, size[0], size[1]], "dtype": "float32",
                  "pixels": "RGB 0..255 after the val resize/letterbox; normalisation is inside the model",
                  "mean": mean.tolist(), "std": std.tolist()},
        "outputs": [{"name": name, "batched": is_batched} for name, is_batched in zip(names, batched)],
        "class_names": trained.class_names, "max_abs_difference": worst,
    }
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    console.print(f"exported {trained.recipe.task} model to {path} ({fmt}; outputs {', '.join(names)}; "
                  f"max |difference| {worst:.2e}); details in {sidecar}", soft_wrap=True, markup=False)
    return path
