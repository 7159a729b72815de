"""`trainer eval`: evaluate a run directory's checkpoint (or a recipe with --checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from trainer.engine.checkpoint import CheckpointError, load_checkpoint, model_state
from trainer.engine.device import autocast_dtype, resolve_device, seed_everything
from trainer.engine.evaluate import evaluate
from trainer.engine.reporting import console, metrics_table
from trainer.engine.session import build_session
from trainer.recipe import LoadedRecipe, RecipeError, RecipeIssue, load_recipe


def load_weights(model: nn.Module, checkpoint_path: Path) -> None:
    checkpoint = load_checkpoint(checkpoint_path)
    state = model_state(checkpoint) if "model" in checkpoint else checkpoint
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [key for key in expected if key in state and tuple(state[key].shape) != tuple(expected[key].shape)]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"checkpoint {checkpoint_path} does not fit this model: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), "
            f"{len(mismatched)} keys of another shape (e.g. {mismatched[:3]})"
        )
    model.load_state_dict(state)


def resolve_target(target: str, overrides: list[str], checkpoint: str | None) -> tuple[LoadedRecipe, Path | None]:
    """A run directory (its recipe.yaml and best.pt) or a recipe file (with --checkpoint)."""
    path = Path(target)
    if path.is_dir():
        if not (path / "recipe.yaml").is_file():
            raise RecipeError([RecipeIssue((), f"{path} is not a run directory (no recipe.yaml)", where=target)])
        loaded = load_recipe([path / "recipe.yaml"], overrides)
        if checkpoint is None:
            best = path / "checkpoints" / "best.pt"
            checkpoint = str(best if best.is_file() else path / "checkpoints" / "last.pt")
        return loaded, Path(checkpoint)
    loaded = load_recipe([path], overrides)
    chosen = checkpoint or loaded.recipe.model.checkpoint
    return loaded, Path(chosen) if chosen else None


def evaluate_command(
    *, target: str, overrides: list[str], checkpoint: str | None = None, json_path: str | None = None,
    device: str | None = None,
) -> dict[str, float]:
    loaded, checkpoint_path = resolve_target(target, overrides, checkpoint)
    recipe = loaded.recipe
    torch_device = resolve_device(device or recipe.environment.device)
    seed_everything(recipe.environment.seed)
    session = build_session(loaded, device=torch_device, for_training=False)
    if checkpoint_path is not None:
        load_weights(session.model, checkpoint_path)
    else:
        console.print("note: no checkpoint given; evaluating the freshly initialised model")
    amp = autocast_dtype(amp=recipe.training.amp, device=torch_device)
    metrics, evaluator = evaluate(model=session.model, session=session, amp_dtype=amp)
    console.print(metrics_table(metrics, title=f"{recipe.task} evaluation ({checkpoint_path or 'untrained'})"))
    report = getattr(session.task, "report", None)  # a task's extra table (detection: per-class AP)
    table = report(evaluator) if report is not None else None
    if table is not None:
        console.print(table)
    if json_path is not None:
        Path(json_path).write_text(json.dumps({"task": recipe.task, "metrics": metrics}, indent=2) + "\n")
    return metrics
