"""`trainer train`: validate and build everything, then fit; returns the run directory."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainer.engine import distributed
from trainer.engine.checkpoint import remove_stale_temp_files
from trainer.engine.device import configure_backends, resolve_device, seed_everything
from trainer.engine.fit import fit
from trainer.engine.inference import load_start_weights
from trainer.engine.mlflow_log import MlflowExperiment
from trainer.engine.reporting import console, get_logger, say
from trainer.engine.resume import read_training_checkpoint, restore
from trainer.engine.run_dir import create_run_dir
from trainer.engine.run_outputs import RunOutputs
from trainer.engine.session import Session, build_session
from trainer.engine.train_state import TrainState, build_train_state
from trainer.plugins import copy_plugins_into_run
from trainer.recipe import LoadedRecipe, Recipe, RecipeError, RecipeIssue, load_recipe, recipe_to_dict, recipe_to_yaml
from trainer.recipe.diff import changed_paths

# what may differ between a resumed run and the recipe it was started with
RESUMABLE_CHANGES = {
    ("training", "epochs"), ("logging", "progress"), ("logging", "log_every"), ("environment", "num_workers"),
    ("environment", "device"), ("environment", "pin_memory"), ("logging", "output_dir"), ("logging", "name"),
}


def load_for_resume(run_dir: Path, recipes: list[str], overrides: list[str]) -> tuple[LoadedRecipe, dict]:
    """The recipe to resume with (the run's own, or the given one if only resumable fields differ)
    and the run's last.pt, read and checked for its format; nothing in the run directory changes."""
    saved, last = run_dir / "recipe.yaml", run_dir / "checkpoints" / "last.pt"
    if not saved.is_file() or not last.is_file():
        raise RecipeError([RecipeIssue((), f"{run_dir} is not a run directory with recipe.yaml and checkpoints/last.pt",
                                       where="--resume")])
    original = load_recipe([saved])
    loaded = load_recipe(recipes or [saved], overrides)
    changed = [p for p in changed_paths(recipe_to_dict(original.recipe), recipe_to_dict(loaded.recipe))
               if p not in RESUMABLE_CHANGES]
    if changed:
        names = ", ".join(".".join(str(part) for part in path) for path in changed)
        raise RecipeError([RecipeIssue((), f"the run in {run_dir} was trained with another recipe "
                                           f"(differs at: {names}); "
                                           "only training.epochs may change on resume", where="--resume")])
    checkpoint = read_training_checkpoint(last)
    done, epochs = checkpoint["counters"]["epoch"], loaded.recipe.training.epochs
    if done >= epochs:
        raise RecipeError([RecipeIssue((), f"the run in {run_dir} has already trained {done} of {epochs} epochs; to "
                                           f"train longer, ask for it: training.epochs={done + 1} or more",
                                       where="--resume")])
    return loaded, checkpoint


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
        loaded, _ = load_for_resume(Path(resume), recipes, overrides)
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


def _resolved(
    *, recipes: list[str], overrides: list[str], output_dir: str | None, name: str | None, resume: str | None,
    device: str | None,
) -> tuple[LoadedRecipe, dict | None]:
    """The recipe with the command line's options applied, and the checkpoint to resume from."""
    checkpoint = None
    if resume is not None:
        loaded, checkpoint = load_for_resume(Path(resume), recipes, overrides)
    elif recipes:
        loaded = load_recipe(recipes, overrides)
    else:
        raise RecipeError([RecipeIssue((), "give a recipe file (or --resume RUN_DIR)", where="command line")])
    recipe = loaded.recipe
    for value, section, key in ((output_dir, recipe.logging, "output_dir"), (name, recipe.logging, "name"),
                                (device, recipe.environment, "device")):
        if value is not None:
            setattr(section, key, value)
    if recipe.logging.name is None:
        recipe.logging.name = Path(recipes[0]).stem if recipes else Path(resume).name
    return loaded, checkpoint


def _prepared_state(session: Session, checkpoint: dict | None, *, resume: str | None) -> tuple[TrainState, str | None]:
    """The train state, restored from `checkpoint` and checked against the recipe (CheckpointError,
    before anything is written), or fresh (from model.checkpoint's weights when given)."""
    recipe = session.recipe
    if checkpoint is None and recipe.model.checkpoint is not None:
        report = load_start_weights(session.model, Path(recipe.model.checkpoint))  # fine-tune from these
        console.print(report.summary(), markup=False, soft_wrap=True)
    state = build_train_state(session)
    if checkpoint is None:
        return state, None
    return state, restore(state, checkpoint, session=session, path=Path(resume) / "checkpoints" / "last.pt")


def _open_run_dir(recipe: Recipe, *, resume: str | None) -> Path:
    """The run directory: the resumed one (its stale temp files removed) or a new one (rank 0 makes it)."""
    if resume is not None:
        run_dir = Path(resume)
        if distributed.is_main_process():
            remove_stale_temp_files(run_dir / "checkpoints")
        return run_dir
    run_dir = None
    if distributed.is_main_process():
        run_dir, note = create_run_dir(output_dir=recipe.logging.output_dir, name=recipe.logging.name)
        if note:
            console.print(note)
    return Path(distributed.broadcast_object(str(run_dir)))


def _open_mlflow(recipe: Recipe) -> MlflowExperiment | None:
    """The MLflow store of logging.mlflow (rank 0), opened before anything is written."""
    options = recipe.logging.mlflow
    if options.tracking_uri is None or not distributed.is_main_process():
        return None
    return MlflowExperiment(tracking_uri=options.tracking_uri, experiment=options.experiment,
                            run_name=options.run_name)


def train(
    *, recipes: list[str], overrides: list[str], output_dir: str | None = None, name: str | None = None,
    resume: str | None = None, device: str | None = None,
) -> Path:
    """Check everything (recipe, data, model, the checkpoint to resume), then make or reopen the run
    directory and fit; returns the run directory."""
    loaded, checkpoint = _resolved(recipes=recipes, overrides=overrides, output_dir=output_dir, name=name,
                                   resume=resume, device=device)
    recipe = loaded.recipe
    torch_device = resolve_device(recipe.environment.device)
    is_distributed = distributed.init_from_environment(torch_device)
    try:
        check_distributed_options(loaded, torch_device)
        configure_backends(device=torch_device, cudnn_benchmark=recipe.environment.cudnn_benchmark,
                           deterministic=recipe.environment.deterministic)
        seed_everything(recipe.environment.seed)
        session = build_session(loaded, device=torch_device, for_training=True, distributed=is_distributed)
        state, note = _prepared_state(session, checkpoint, resume=resume)
        del checkpoint  # its tensors are in the state now
        mlflow = _open_mlflow(recipe)
        run_dir = _open_run_dir(recipe, resume=resume)  # nothing was written before this line
        logger = get_logger(run_dir if distributed.is_main_process() else None)
        if distributed.is_main_process():
            (run_dir / "recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
            for plugin_note in copy_plugins_into_run(recipe.imports, run_dir=run_dir):
                say(logger, plugin_note)
            say(logger, f"training {recipe.task} on {torch_device} ({distributed.world_size()} process(es)); "
                        f"run: {run_dir}")
            if resume is not None:
                counters = state.counters
                say(logger, f"resumed from {run_dir / 'checkpoints' / 'last.pt'}: epoch {counters.epoch + 1}, "
                            f"step {counters.step_in_epoch}")
            if note:
                say(logger, note)
        outputs = RunOutputs(session, run_dir, main=distributed.is_main_process(), mlflow=mlflow)
        fit(session, state, run_dir=run_dir, outputs=outputs, logger=logger)
    finally:
        distributed.cleanup()
    return run_dir
