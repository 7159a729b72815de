"""`trainer predict RUN_DIR|CHECKPOINT IMAGE_OR_DIR... [--out DIR]`: run a trained model on image
files and write what it predicts.

The recipe comes from the run directory (`recipe.yaml`, weights `checkpoints/best.pt`, else
`last.pt`) or from the checkpoint itself (it holds the recipe and the class names); EMA weights
are used when the run kept them. Each image goes through the recipe's `augmentation.val`
transforms and the device-side normalisation, as in validation. Written to DIR:

- classification: `predictions.json` `[{file, top_k: [{class, score}]}]`, and `images/<name>.png`
  with the top-1 class and score drawn on it;
- detection: `predictions.json` in the COCO results format (`image_id`, `category_id` = class
  index, `bbox` [x, y, w, h] in the original image's pixels, `score`), `images.json`
  (`images`: id, file_name, width, height; `categories`: id, name) and `images/<name>.png` with
  the boxes scoring at least `--draw-threshold` drawn;
- segmentation: `masks/<name>.png` (8-bit class indices at the original size, nearest; 255 where
  the val transforms cropped the image away), `images/<name>.png` (colour overlay) and
  `predictions.json` `[{file, mask, image, classes: {class: fraction of pixels}}]`.

Predictions are mapped back to the original pixels by following the image's full-canvas box
through the val transforms (resize, letterbox, crops: any per-axis scale and shift).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import tv_tensors

from trainer.components import load_builtin_components
from trainer.data.errors import DataError
from trainer.data.image_folder import IMAGE_EXTENSIONS, list_images, read_rgb_image
from trainer.data.transforms import build_transforms
from trainer.engine.checkpoint import CheckpointError, load_checkpoint, model_state
from trainer.engine.device import autocast_context, autocast_dtype, resolve_device
from trainer.engine.reporting import console
from trainer.engine.session import Normalizer
from trainer.engine.val_images import DRAW_SCORE_THRESHOLD, draw_detections, draw_label, draw_mask, save_png
from trainer.models.build import build_model
from trainer.recipe import Recipe, RecipeError, RecipeIssue, load_recipe, recipe_from_dict, recipe_to_dict
from trainer.recipe.load import Locations, parse_yaml_value
from trainer.recipe.validate import validate_raw_recipe

IGNORE = 255


@dataclass
class TrainedModel:
    """A trained model ready for inference, with what is needed to feed it."""

    recipe: Recipe
    class_names: list[str]
    model: nn.Module  # eval mode, on `device`
    normalizer: Normalizer
    transform: Any  # the val transforms (v2.Compose), uint8 in, uint8 out
    checkpoint_path: Path
    run_dir: Path | None
    device: torch.device

    @property
    def task(self) -> str:
        return self.recipe.task


def _usage(message: str, where: str) -> RecipeError:
    return RecipeError([RecipeIssue((), message, where=where)])


def _recipe_from_checkpoint(checkpoint: dict[str, Any], path: Path) -> Recipe:
    text = checkpoint.get("recipe")
    if not isinstance(text, str):
        raise CheckpointError(f"{path} holds no recipe (a bare state dict?); give the run directory instead")
    load_builtin_components()
    raw = parse_yaml_value(text)
    validate_raw_recipe(raw, Locations())
    return recipe_from_dict(raw)


def _run_checkpoint(run_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise CheckpointError(f"{run_dir} has no checkpoints/best.pt or checkpoints/last.pt")


def _without_pretrained(architecture: dict[str, Any]) -> dict[str, Any]:
    """The trained weights replace any `pretrained` file, which need not exist where we predict."""
    for part in ("backbone", "full"):
        entry = architecture.get(part)
        if isinstance(entry, dict) and entry.get("pretrained") is not None:
            entry["pretrained"] = None
    return architecture


def load_trained(target: str, *, device: str | None = None, checkpoint: str | None = None) -> TrainedModel:
    """A run directory or a checkpoint file -> the model with its EMA (else plain) weights, in eval mode."""
    path = Path(target)
    if not path.exists():
        raise FileNotFoundError(f"no such run directory or checkpoint: {path}")
    run_dir = None
    if path.is_dir():
        if not (path / "recipe.yaml").is_file():
            raise _usage(f"{path} is not a run directory (no recipe.yaml)", where=target)
        run_dir = path
        checkpoint_path = Path(checkpoint) if checkpoint else _run_checkpoint(path)
        state = load_checkpoint(checkpoint_path)
        recipe = load_recipe([path / "recipe.yaml"]).recipe
    else:
        checkpoint_path = path
        state = load_checkpoint(path)
        recipe = _recipe_from_checkpoint(state, path)
        if path.parent.name == "checkpoints" and (path.parent.parent / "recipe.yaml").is_file():
            run_dir = path.parent.parent
    if "model" not in state or not isinstance(state.get("class_names"), list):
        raise CheckpointError(f"{checkpoint_path} is not a trainer checkpoint (needs 'model' and 'class_names')")
    class_names = [str(name) for name in state["class_names"]]
    torch_device = resolve_device(device or recipe.environment.device)
    model_config = recipe_to_dict(recipe)["model"]
    model = build_model(
        task=recipe.task, architecture=_without_pretrained(model_config["architecture"]),
        criteria=[entry["criterion"] for entry in model_config["losses"]], num_classes=len(class_names),
    )
    result = model.load_state_dict(model_state(state), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {checkpoint_path} does not fit the model its recipe builds: {len(result.missing_keys)} "
            f"missing keys (e.g. {result.missing_keys[:3]}), {len(result.unexpected_keys)} unexpected keys "
            f"(e.g. {result.unexpected_keys[:3]})"
        )
    transform, normalize = build_transforms(recipe.augmentation.val, task=None, where="augmentation.val")
    return TrainedModel(
        recipe=recipe, class_names=class_names, model=model.to(torch_device).eval(),
        normalizer=Normalizer.build(normalize, torch_device), transform=transform, checkpoint_path=checkpoint_path,
        run_dir=run_dir, device=torch_device,
    )


def collect_images(inputs: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for images; missing paths are an error."""
    if not inputs:
        raise _usage("give at least one image file or folder", where="trainer predict")
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
    if trained.task == "classification":  # no geometry to map back (and some transforms reject boxes)
        return torch.as_tensor(trained.transform(image)), (0.0, 0.0, float(width), float(height))
    corners = tv_tensors.BoundingBoxes(
        torch.tensor([[0.0, 0.0, float(width), float(height)]]), format="XYXY", canvas_size=(height, width),
        clamping_mode=None,
    )
    out = trained.transform({"image": image, "boxes": corners})
    region = tuple(float(v) for v in out["boxes"].reshape(4).tolist())
    return torch.as_tensor(out["image"]), region


def boxes_to_original(boxes: torch.Tensor, region: tuple, height: int, width: int) -> torch.Tensor:
    """XYXY boxes in network-input pixels -> the original image's pixels, clipped to it."""
    x0, y0, x1, y1 = region
    sx, sy = width / max(x1 - x0, 1e-6), height / max(y1 - y0, 1e-6)
    mapped = boxes.float().clone()
    mapped[:, 0::2] = ((mapped[:, 0::2] - x0) * sx).clamp(0, width)
    mapped[:, 1::2] = ((mapped[:, 1::2] - y0) * sy).clamp(0, height)
    return mapped


def mask_to_original(mask: torch.Tensor, region: tuple, height: int, width: int) -> torch.Tensor:
    """(h, w) class mask of the network input -> (height, width), nearest; IGNORE outside the input."""
    x0, y0, x1, y1 = region
    in_h, in_w = mask.shape
    xs = torch.floor(x0 + (torch.arange(width, dtype=torch.float64) + 0.5) * (x1 - x0) / width).long()
    ys = torch.floor(y0 + (torch.arange(height, dtype=torch.float64) + 0.5) * (y1 - y0) / height).long()
    valid = ((ys >= 0) & (ys < in_h))[:, None] & ((xs >= 0) & (xs < in_w))[None, :]
    picked = mask[ys.clamp(0, in_h - 1)][:, xs.clamp(0, in_w - 1)]
    return torch.where(valid, picked, torch.full_like(picked, IGNORE))


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


def _batches(items: list[tuple], batch_size: int):
    """Consecutive items whose network inputs have the same shape, at most batch_size at a time."""
    group: list[tuple] = []
    for item in items:
        if group and (len(group) == batch_size or group[0][2].shape != item[2].shape):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def predict_command(
    *, target: str, inputs: list[str], out: str | None = None, device: str | None = None, top_k: int = 5,
    draw_threshold: float = DRAW_SCORE_THRESHOLD, batch_size: int = 8, checkpoint: str | None = None,
) -> Path:
    trained = load_trained(target, device=device, checkpoint=checkpoint)
    paths = collect_images(inputs)
    if out is not None:
        out_dir = Path(out)
    elif trained.run_dir is not None:
        out_dir = trained.run_dir / "predictions"
    else:
        out_dir = Path("predictions")
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = {"classification": _ClassificationWriter, "detection": _DetectionWriter,
              "segmentation": _SegmentationWriter}[trained.task](trained, out_dir, top_k=top_k,
                                                                 draw_threshold=draw_threshold)
    names = _unique_names(paths)

    def items():
        for index, (path, name) in enumerate(zip(paths, names)):
            image = read_rgb_image(path)
            tensor, region = preprocess(trained, image)
            yield (index, path, tensor, region, image, name)

    for group in _batches(items(), batch_size):
        outputs = _forward(trained, [item[2] for item in group])
        writer.add(group, outputs)
    writer.finish()
    console.print(f"{trained.task} predictions for {len(paths)} image(s) from {trained.checkpoint_path} "
                  f"written to {out_dir}", soft_wrap=True, markup=False)
    return out_dir


class _Writer:
    def __init__(self, trained: TrainedModel, out_dir: Path, *, top_k: int, draw_threshold: float) -> None:
        self.trained, self.out_dir = trained, out_dir
        self.top_k, self.draw_threshold = top_k, draw_threshold
        self.names = trained.class_names
        self.records: list[Any] = []

    def image_path(self, name: str, folder: str = "images") -> Path:
        return self.out_dir / folder / f"{name}.png"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def write_json(self, name: str, payload: Any) -> None:
        (self.out_dir / name).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")

    def finish(self) -> None:  # one record per line: readable, and still one JSON document
        text = "[\n" + ",\n".join(json.dumps(record) for record in self.records) + "\n]\n"
        (self.out_dir / "predictions.json").write_text(text if self.records else "[]\n", encoding="utf-8")


class _ClassificationWriter(_Writer):
    def add(self, group: list[tuple], outputs: dict[str, torch.Tensor]) -> None:
        probabilities = outputs["logits"].softmax(dim=1).cpu()
        scores, labels = probabilities.topk(min(self.top_k, probabilities.shape[1]), dim=1)
        for (_, path, _, _, image, name), score, label in zip(group, scores.tolist(), labels.tolist()):
            drawn = self.image_path(name)
            save_png(draw_label(image, f"{self.names[label[0]]} {score[0]:.2f}"), drawn)
            self.records.append({
                "file": str(path), "image": self.relative(drawn),
                "top_k": [{"class": self.names[c], "score": round(s, 6)} for c, s in zip(label, score)],
            })
            if len(self.records) <= 20:
                console.print(f"{path}: {self.names[label[0]]} ({score[0]:.3f})", markup=False, soft_wrap=True)


class _DetectionWriter(_Writer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.images: list[dict[str, Any]] = []

    def add(self, group: list[tuple], outputs: dict[str, torch.Tensor]) -> None:
        from trainer.tasks.detection_postprocess import detections_from_outputs

        options = self.trained.recipe.model.postprocess
        size = tuple(group[0][2].shape[-2:])
        detections = detections_from_outputs(
            outputs, image_size=size, score_threshold=options.score_threshold, nms_iou=options.nms_iou,
            max_detections=options.max_detections, pre_nms_top_k=options.pre_nms_top_k,
        )
        for (index, path, _, region, image, name), found in zip(group, detections):
            height, width = image.shape[-2:]
            boxes = boxes_to_original(found["boxes"].cpu(), region, height, width)
            scores, labels = found["scores"].cpu(), found["labels"].cpu()
            drawn = self.image_path(name)
            save_png(draw_detections(image, boxes=boxes, scores=scores, labels=labels, class_names=self.names,
                                     score_threshold=self.draw_threshold), drawn)
            self.images.append({"id": index, "file_name": str(path), "width": int(width), "height": int(height),
                                "image": self.relative(drawn)})
            for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
                self.records.append({
                    "image_id": index, "category_id": int(label),
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "score": round(score, 5),
                })
            if len(self.images) <= 20:
                shown = int((scores >= self.draw_threshold).sum())
                console.print(f"{path}: {len(scores)} detections, {shown} with score >= {self.draw_threshold}",
                              markup=False)

    def finish(self) -> None:
        super().finish()
        categories = [{"id": index, "name": name} for index, name in enumerate(self.names)]
        self.write_json("images.json", {"images": self.images, "categories": categories})


class _SegmentationWriter(_Writer):
    def add(self, group: list[tuple], outputs: dict[str, torch.Tensor]) -> None:
        import torch.nn.functional as F

        logits = outputs["logits"]
        size = tuple(group[0][2].shape[-2:])
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        predicted = logits.argmax(dim=1).cpu()
        for (_, path, _, region, image, name), mask in zip(group, predicted):
            height, width = image.shape[-2:]
            original = mask_to_original(mask, region, height, width)
            mask_file, drawn = self.image_path(name, "masks"), self.image_path(name)
            save_png(original.to(torch.uint8), mask_file)
            save_png(draw_mask(image, original, class_names=self.names), drawn)
            counts = torch.bincount(original.flatten(), minlength=IGNORE + 1)[: len(self.names)]
            total = max(int(height * width), 1)
            self.records.append({
                "file": str(path), "mask": self.relative(mask_file), "image": self.relative(drawn),
                "classes": {self.names[c]: round(int(n) / total, 5) for c, n in enumerate(counts.tolist()) if n},
            })
            if len(self.records) <= 20:
                shown = ", ".join(f"{k} {v:.0%}" for k, v in self.records[-1]["classes"].items())
                console.print(f"{path}: {shown}", markup=False)
