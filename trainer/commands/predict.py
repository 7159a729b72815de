"""`trainer predict RUN_DIR|CHECKPOINT IMAGE_OR_DIR... [--out DIR] [--force]`: run a trained model on
image files and write what it predicts.

The model comes from `trainer.engine.inference.load_trained` (a run directory's `recipe.yaml` and
`checkpoints/best.pt`, else `last.pt`, or a checkpoint file, which holds the recipe and the class
names; EMA weights when the run kept them). Each image goes through the recipe's
`augmentation.val` transforms and the device-side normalisation, as in validation; the task's
prediction writer (`Task.prediction_writer`) writes `predictions.json` and drawn images into DIR.
Predictions are mapped back to the original pixels by following the image's full-canvas box
through the val transforms (resize, letterbox, crops: any per-axis scale and shift). DIR is
checked before any work; one that already holds `predictions.json` is kept unless `--force`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torchvision import tv_tensors

from trainer.data.errors import DataError
from trainer.data.image_folder import IMAGE_EXTENSIONS, list_images, read_rgb_image
from trainer.engine.device import autocast_context, autocast_dtype
from trainer.engine.inference import TrainedModel, load_trained, run_dir_of, usage_error
from trainer.engine.output_paths import output_folder
from trainer.engine.reporting import console
from trainer.tasks.drawing import DRAW_SCORE_THRESHOLD
from trainer.tasks.predictions import PredictedImage

SHOWN_LINES = 20  # per-image lines printed; the rest is in predictions.json


def collect_images(inputs: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for images; missing paths are an error."""
    if not inputs:
        raise usage_error("give at least one image file or folder", where="trainer predict")
    images: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            raise DataError(f"image file or folder not found: {path}")
    _check_readable(images)
    return images


def _check_readable(images: list[Path]) -> None:
    """Open every file's header before any work, so a bad input stops the command at once."""
    from PIL import Image, UnidentifiedImageError

    for path in images:
        try:
            with Image.open(path) as pil:
                pil.size  # noqa: B018 - reading the header is the check
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"cannot read image {path}: {error}") from None


def preprocess(trained: TrainedModel, image: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
    """The val transforms; also where the original image's corners end up (x0, y0, x1, y1)."""
    height, width = image.shape[-2:]
    if not trained.task.maps_back_to_image:
        return torch.as_tensor(trained.transform(image)), (0.0, 0.0, float(width), float(height))
    corners = tv_tensors.BoundingBoxes(
        torch.tensor([[0.0, 0.0, float(width), float(height)]]), format="XYXY", canvas_size=(height, width),
        clamping_mode=None,
    )
    out = trained.transform({"image": image, "boxes": corners})
    region = tuple(float(v) for v in out["boxes"].reshape(4).tolist())
    return torch.as_tensor(out["image"]), region


def _unique_names(paths: list[Path]) -> list[str]:
    names, used = [], set()
    for path in paths:
        name, number = path.stem, 2
        while name in used:
            name, number = f"{path.stem}_{number}", number + 1
        used.add(name)
        names.append(name)
    return names


@torch.no_grad()
def _forward(trained: TrainedModel, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    batch = trained.normalizer(torch.stack(images).to(trained.device))
    amp = autocast_dtype(amp=trained.recipe.training.amp, device=trained.device)
    with autocast_context(device=trained.device, dtype=amp):
        outputs = trained.model(batch)
    return {name: value.float() for name, value in outputs.items()}


def _items(trained: TrainedModel, paths: list[Path]) -> Iterator[PredictedImage]:
    for index, (path, name) in enumerate(zip(paths, _unique_names(paths))):
        image = read_rgb_image(path)
        tensor, region = preprocess(trained, image)
        yield PredictedImage(index=index, path=path, name=name, tensor=tensor, region=region, image=image)


def _batches(items: Iterator[PredictedImage], batch_size: int) -> Iterator[list[PredictedImage]]:
    """Consecutive items whose network inputs have the same shape, at most batch_size at a time."""
    group: list[PredictedImage] = []
    for item in items:
        if group and (len(group) == batch_size or group[0].tensor.shape != item.tensor.shape):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _out_dir(out: str | None, target: str) -> Path:
    """--out, else the run directory's `predictions/` (for a run directory or a checkpoint inside one)."""
    if out is not None:
        return Path(out)
    run_dir = run_dir_of(target)
    return run_dir / "predictions" if run_dir is not None else Path("predictions")


def predict_command(
    *, target: str, inputs: list[str], out: str | None = None, device: str | None = None, top_k: int = 5,
    draw_threshold: float = DRAW_SCORE_THRESHOLD, batch_size: int = 8, checkpoint: str | None = None,
    force: bool = False,
) -> Path:
    out_dir = output_folder(_out_dir(out, target), option="--out", force=force,
                            keeps=("predictions.json",))
    paths = collect_images(inputs)
    trained = load_trained(target, device=device, checkpoint=checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = trained.task.prediction_writer(out_dir=out_dir, class_names=trained.class_names,
                                            postprocess=trained.recipe.model.postprocess, top_k=top_k,
                                            draw_threshold=draw_threshold)
    shown = 0
    for group in _batches(_items(trained, paths), batch_size):
        for line in writer.add(group, _forward(trained, [item.tensor for item in group])):
            shown += 1
            if shown <= SHOWN_LINES:
                console.print(line, markup=False, soft_wrap=True)
    writer.finish()
    console.print(f"{trained.recipe.task} predictions for {len(paths)} image(s) from {trained.checkpoint_path} "
                  f"written to {out_dir}", soft_wrap=True, markup=False)
    return out_dir
