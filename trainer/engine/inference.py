"""One way to build a model from a recipe and one way to put trained weights into it, used by
`trainer train` (the session), `eval`, `predict` and `export`.

- `build_recipe_model`: the recipe's architecture and losses -> the network (`models/build.py`).
- `load_trained_weights` (eval, predict, export): a checkpoint (EMA weights when the run kept them)
  or a state dict into that network through the one weight loader (`models/weights.py`), strictly:
  a checkpoint for another number of classes is a `CheckpointError` that says so.
- `load_start_weights` (train's `model.checkpoint`): the same loader, fine-tuning rules.
- `load_trained`: a run directory or a checkpoint file -> `TrainedModel`, the model in eval mode
  with what feeds it (val transforms, normalisation) for `predict` and `export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.components import load_builtin_components
from trainer.data.transforms import NormalizeParams, build_transforms
from trainer.engine.checkpoint import CheckpointError, load_checkpoint
from trainer.engine.device import resolve_device
from trainer.models.build import build_model
from trainer.models.weights import LoadReport, WeightsError, load_weights, read_state_dict
from trainer.ops import normalize_images
from trainer.recipe import Recipe, RecipeError, RecipeIssue, load_recipe, recipe_from_dict, recipe_to_dict
from trainer.recipe.load import Locations, parse_yaml_value
from trainer.recipe.validate import validate_raw_recipe
from trainer.tasks import get_task
from trainer.tasks.base import Task


@dataclass
class Normalizer:
    """Images arrive as uint8 and are normalised on the device: (x / 255 - mean) / std."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def build(cls, params: NormalizeParams | None, device: torch.device) -> Normalizer:
        mean = params.mean if params is not None else (0.0, 0.0, 0.0)
        std = params.std if params is not None else (1.0, 1.0, 1.0)
        return cls(
            mean=torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
            std=torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1),
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return normalize_images(images, mean=self.mean, std=self.std)


def _without_pretrained(architecture: dict[str, Any]) -> dict[str, Any]:
    """Trained weights replace any `pretrained` file, which need not exist where the model is used."""
    for part in ("backbone", "full"):
        entry = architecture.get(part)
        if isinstance(entry, dict) and entry.get("pretrained") is not None:
            entry["pretrained"] = None
    return architecture


def build_recipe_model(recipe: Recipe, *, num_classes: int, pretrained: bool = True) -> nn.Module:
    """The network of `recipe` for `num_classes`; `pretrained=False` skips the backbone's pretrained weights
    (trained weights follow)."""
    model_config = recipe_to_dict(recipe)["model"]
    architecture = model_config["architecture"] if pretrained else _without_pretrained(model_config["architecture"])
    criteria = [entry["criterion"] for entry in model_config["losses"]]
    return build_model(task=recipe.task, architecture=architecture, criteria=criteria, num_classes=num_classes)


def _class_count_mismatch(model: nn.Module, tensors: dict, class_names: list[str]) -> str | None:
    """'N classes in the checkpoint, M in the recipe' when the tensors differ only in their class axis."""
    own = model.state_dict()
    differing = [(tensors[k].shape, own[k].shape) for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if not differing or any(a[1:] != b[1:] or b[0] % len(class_names) for a, b in differing):
        return None
    counts = {a[0] * len(class_names) / b[0] for a, b in differing}
    if len(counts) != 1 or not float(next(iter(counts))).is_integer():
        return None
    return f"{int(counts.pop())} classes in the checkpoint, {len(class_names)} in the recipe ({', '.join(class_names)})"


DEFAULTS_CHANGED = (  # a run's recipe.yaml names only what its author wrote; the rest follows today's defaults
    "if an older trainer wrote it, a default may have changed since (fpn out_channels was 256, anchor_decoupled "
    "norm was none): write the old value into the run's recipe.yaml"
)


def load_trained_weights(model: nn.Module, path: Path, *, class_names: list[str]) -> LoadReport:
    """Every tensor of `model` from the checkpoint or state dict at `path` (EMA weights when the run kept
    them); a CheckpointError names the file and the mismatch (another class count in words)."""
    state = load_checkpoint(path)
    try:
        return load_weights(model, state, prefer_ema=True, strict=True, label=str(path))
    except WeightsError as error:
        mismatch = _class_count_mismatch(model, read_state_dict(state)[0], class_names)
        detail = f"{error}; {DEFAULTS_CHANGED}" if mismatch is None else (
            f"it was trained for another number of classes: {mismatch}; use the recipe (or run directory) it "
            "was trained with")
        raise CheckpointError(f"checkpoint {path} does not fit this model: {detail}") from None


def load_start_weights(model: nn.Module, path: Path) -> LoadReport:
    """The weights a training starts from (`model.checkpoint`): tensors that fit load, class predictions
    for another class count keep their initial values (see `models/weights.py`, strict=False)."""
    state = load_checkpoint(path)
    try:
        return load_weights(model, state, prefer_ema=True, strict=False, label=str(path))
    except WeightsError as error:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {error}") from None


@dataclass
class TrainedModel:
    """A trained model ready for inference, with what is needed to feed it."""

    recipe: Recipe
    task: Task
    class_names: list[str]
    model: nn.Module  # eval mode, on `device`
    normalizer: Normalizer
    transform: Any  # the val transforms (v2.Compose), uint8 in, uint8 out
    checkpoint_path: Path
    run_dir: Path | None
    device: torch.device


def usage_error(message: str, where: str) -> RecipeError:
    return RecipeError([RecipeIssue((), message, where=where)])


def _recipe_from_checkpoint(checkpoint: dict[str, Any], path: Path) -> Recipe:
    text = checkpoint.get("recipe")
    if not isinstance(text, str):
        raise CheckpointError(f"{path} holds no recipe (a bare state dict?); give the run directory instead")
    load_builtin_components()
    raw = parse_yaml_value(text, source=f"{path} (the recipe it holds)")
    validate_raw_recipe(raw, Locations())
    return recipe_from_dict(raw)


def run_checkpoint(run_dir: Path) -> Path:
    """A run's best.pt, else its last.pt."""
    for name in ("best.pt", "last.pt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise CheckpointError(f"{run_dir} has no checkpoints/best.pt or checkpoints/last.pt")


def run_dir_of(target: str) -> Path | None:
    """The run directory `target` is (a folder with recipe.yaml) or holds (a file in its checkpoints/)."""
    path = Path(target)
    run_dir = path if path.is_dir() else (path.parent.parent if path.parent.name == "checkpoints" else None)
    return run_dir if run_dir is not None and (run_dir / "recipe.yaml").is_file() else None


def locate(target: str, checkpoint: str | None) -> tuple[Path, Path | None]:
    """(checkpoint file, run directory or None) for a run directory (its best.pt, else last.pt, or
    `checkpoint`) or a checkpoint file."""
    path = Path(target)
    if not path.exists():
        raise FileNotFoundError(f"no such run directory or checkpoint: {path}")
    if path.is_dir():
        if not (path / "recipe.yaml").is_file():
            raise usage_error(f"{path} is not a run directory (no recipe.yaml)", where=target)
        return (Path(checkpoint) if checkpoint else run_checkpoint(path)), path
    return path, run_dir_of(target)


def load_trained(target: str, *, device: str | None = None, checkpoint: str | None = None) -> TrainedModel:
    """A run directory or a checkpoint file -> the model with its EMA (else plain) weights, in eval mode."""
    checkpoint_path, run_dir = locate(target, checkpoint)
    state = load_checkpoint(checkpoint_path, mmap=True)
    if Path(target).is_dir():
        recipe = load_recipe([Path(target) / "recipe.yaml"]).recipe
    else:
        recipe = _recipe_from_checkpoint(state, checkpoint_path)
    if "model" not in state or not isinstance(state.get("class_names"), list):
        raise CheckpointError(f"{checkpoint_path} is not a trainer checkpoint (needs 'model' and 'class_names')")
    class_names = [str(name) for name in state["class_names"]]
    torch_device = resolve_device(device or recipe.environment.device)
    model = build_recipe_model(recipe, num_classes=len(class_names), pretrained=False)
    load_trained_weights(model, checkpoint_path, class_names=class_names)
    transform, normalize = build_transforms(recipe.augmentation.val, task=None, where="augmentation.val")
    return TrainedModel(
        recipe=recipe, task=get_task(recipe.task), class_names=class_names, model=model.to(torch_device).eval(),
        normalizer=Normalizer.build(normalize, torch_device), transform=transform,
        checkpoint_path=checkpoint_path, run_dir=run_dir, device=torch_device,
    )
