"""`trainer eval`: evaluate a run directory's checkpoint (or a recipe with --checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.engine.device import autocast_dtype, resolve_device, seed_everything
from trainer.engine.evaluate import evaluate
from trainer.engine.inference import load_trained_weights
from trainer.engine.output_paths import output_file
from trainer.engine.reporting import console, metrics_table
from trainer.engine.session import build_session
from trainer.recipe import LoadedRecipe, RecipeError, RecipeIssue, load_recipe


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
    json_file = output_file(Path(json_path), option="--json", force=True) if json_path is not None else None
    loaded, checkpoint_path = resolve_target(target, overrides, checkpoint)
    recipe = loaded.recipe
    torch_device = resolve_device(device or recipe.environment.device)
    seed_everything(recipe.environment.seed)
    session = build_session(loaded, device=torch_device, for_training=False)
    if checkpoint_path is not None:
        load_trained_weights(session.model, checkpoint_path, class_names=session.class_names)
    else:
        console.print("note: no checkpoint given; evaluating the freshly initialised model")
    amp = autocast_dtype(amp=recipe.training.amp, device=torch_device)
    metrics, evaluator = evaluate(model=session.model, session=session, amp_dtype=amp)
    console.print(metrics_table(metrics, title=f"{recipe.task} evaluation ({checkpoint_path or 'untrained'})"))
    table = session.task.report(evaluator)  # a task's extra table (detection: per-class AP)
    if table is not None:
        console.print(table)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps({"task": recipe.task, "metrics": metrics}, indent=2) + "\n")
    return metrics
