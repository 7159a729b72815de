"""`trainer train`: validate and build everything, then fit; returns the run directory."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainer.commands.evaluate import load_weights
from trainer.data.errors import DataError
from trainer.data.loaders import worker_error_message
from trainer.engine import distributed
from trainer.engine.checkpoint import load_checkpoint
from trainer.engine.device import configure_backends, resolve_device, seed_everything
from trainer.engine.fit import DataFailure, fit
from trainer.engine.reporting import console, get_logger, say
from trainer.engine.run_dir import create_run_dir
from trainer.engine.session import build_session
from trainer.recipe import LoadedRecipe, RecipeError, RecipeIssue, load_recipe, recipe_to_dict, recipe_to_yaml

# what may differ between a resumed run and the recipe it was started with
RESUMABLE_CHANGES = {
    ("training", "epochs"), ("logging", "progress"), ("logging", "log_every"), ("environment", "num_workers"),
    ("environment", "device"), ("environment", "pin_memory"), ("logging", "output_dir"), ("logging", "name"),
}


def _differences(left: dict, right: dict, path: tuple = ()) -> list[tuple]:
    if isinstance(left, dict) and isinstance(right, dict):
        found = []
        for key in list(left) + [k for k in right if k not in left]:
            found += _differences(left.get(key), right.get(key), path + (key,))
        return found
    return [] if left == right else [path]


def load_for_resume(run_dir: Path, recipes: list[str], overrides: list[str]) -> LoadedRecipe:
    saved = run_dir / "recipe.yaml"
    if not saved.is_file() or not (run_dir / "checkpoints" / "last.pt").is_file():
        raise RecipeError([RecipeIssue((), f"{run_dir} is not a run directory with recipe.yaml and checkpoints/last.pt",
                                       where="--resume")])
    original = load_recipe([saved])
    loaded = load_recipe(recipes or [saved], overrides)
    changed = [p for p in _differences(recipe_to_dict(original.recipe), recipe_to_dict(loaded.recipe))
               if p not in RESUMABLE_CHANGES]
    if changed:
        names = ", ".join(".".join(str(part) for part in path) for path in changed)
        raise RecipeError([RecipeIssue((), f"the run in {run_dir} was trained with another recipe "
                                           f"(differs at: {names}); "
                                           "only training.epochs may change on resume", where="--resume")])
    done = load_checkpoint(run_dir / "checkpoints" / "last.pt", mmap=True)["epoch"]
    epochs = loaded.recipe.training.epochs
    if done >= epochs:
        raise RecipeError([RecipeIssue((), f"the run in {run_dir} has already trained {done} of {epochs} epochs; to "
                                           f"train longer, ask for it: training.epochs={done + 1} or more",
                                       where="--resume")])
    return loaded


def check_launch(*, recipes: list[str], overrides: list[str], resume: str | None, device: str | None,
                 nproc: int) -> None:
    """Before `--nproc N` starts N workers: the recipe (one message rather than one per worker) and
    the GPUs."""
    where = f"--nproc {nproc}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RecipeError(
            [RecipeIssue((), "--nproc starts torchrun itself; inside torchrun leave it out", where=where)]
        )
    if resume is not None:
        loaded = load_for_resume(Path(resume), recipes, overrides)
    elif recipes:
        loaded = load_recipe(recipes, overrides)
    else:
        raise RecipeError([RecipeIssue((), "give a recipe file (or --resume RUN_DIR)", where="command line")])
    name = device or loaded.recipe.environment.device
    if name.startswith("cuda") or (name == "auto" and torch.cuda.is_available()):
        count = torch.cuda.device_count()
        if nproc > count:
            raise RecipeError([RecipeIssue((), f"{nproc} processes need {nproc} GPUs; this machine has {count}",
                                           where=where)])
        if name.startswith("cuda:"):
            raise RecipeError([RecipeIssue((), f"device '{name}' would put every process on one GPU; use "
                                               "--device cuda (each process takes cuda:LOCAL_RANK) and "
                                               "CUDA_VISIBLE_DEVICES to choose GPUs", where=where)])


def check_distributed_options(loaded: LoadedRecipe, device: torch.device) -> None:
    if loaded.recipe.training.sync_batchnorm and device.type == "cpu" and distributed.world_size() > 1:
        path = ("training", "sync_batchnorm")
        raise RecipeError([RecipeIssue(path, "SyncBatchNorm needs CUDA devices; set it to false for CPU processes",
                                       where=loaded.locations.find(path))])


def train(
    *, recipes: list[str], overrides: list[str], output_dir: str | None = None, name: str | None = None,
    resume: str | None = None, device: str | None = None,
) -> Path:
    if resume is not None:
        loaded = load_for_resume(Path(resume), recipes, overrides)
    else:
        if not recipes:
            raise RecipeError([RecipeIssue((), "give a recipe file (or --resume RUN_DIR)", where="command line")])
        loaded = load_recipe(recipes, overrides)
    recipe = loaded.recipe
    if output_dir is not None:
        recipe.logging.output_dir = output_dir
    if name is not None:
        recipe.logging.name = name
    if device is not None:
        recipe.environment.device = device
    if recipe.logging.name is None:
        recipe.logging.name = Path(recipes[0]).stem if recipes else Path(resume).name
    torch_device = resolve_device(recipe.environment.device)
    is_distributed = distributed.init_from_environment(torch_device)
    try:
        check_distributed_options(loaded, torch_device)
        configure_backends(device=torch_device, cudnn_benchmark=recipe.environment.cudnn_benchmark,
                           deterministic=recipe.environment.deterministic)
        seed_everything(recipe.environment.seed)
        session = build_session(loaded, device=torch_device, for_training=True, distributed=is_distributed)
        if resume is None and recipe.model.checkpoint is not None:
            load_weights(session.model, Path(recipe.model.checkpoint))  # start (fine-tune) from these weights
        if resume is not None:
            run_dir = Path(resume)
        else:
            run_dir = None
            if distributed.is_main_process():
                run_dir, note = create_run_dir(output_dir=recipe.logging.output_dir, name=recipe.logging.name)
                if note:
                    console.print(note)
            run_dir = Path(distributed.broadcast_object(str(run_dir)))
        logger = get_logger(run_dir if distributed.is_main_process() else None)
        if distributed.is_main_process():
            (run_dir / "recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
            say(logger, f"training {recipe.task} on {torch_device} ({distributed.world_size()} process(es)); "
                        f"run: {run_dir}")
        resume_from = run_dir / "checkpoints" / "last.pt" if resume is not None else None
        try:
            fit(session, run_dir=run_dir, resume_from=resume_from, logger=logger)
        except DataError as error:  # the data was fine while building, so this is a failure during the run
            last = run_dir / "checkpoints" / "last.pt"
            kept = (f"{last} is kept; fix the data and resume with: trainer train --resume {run_dir}"
                    if last.is_file() else "no checkpoint had been written yet")
            raise DataFailure(f"bad data during training: {worker_error_message(error)}; {kept}") from None
    finally:
        distributed.cleanup()
    return run_dir
