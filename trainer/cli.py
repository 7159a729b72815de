"""The `trainer` command line: parse arguments, call one function per command, map errors to exit
codes (0 success, 2 recipe or usage error, 1 failure during the run)."""

from __future__ import annotations

import errno
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional

import typer

from trainer.cli_options import check_options
from trainer.data.errors import DataWarning, worker_error_message  # a module that imports nothing

# Nothing here imports torch: `trainer --help`, `trainer COMMAND --help` and shell completion stay fast;
# each command imports what it needs when it runs.

app = typer.Typer(
    add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train, evaluate and export vision models from YAML recipes.")
_state = {"debug": False}

# Errors are matched by (defining module, class name) anywhere in the exception's class hierarchy, so that
# catching them imports none of those modules (most import torch).
# Exit code 2: bad input (recipe, data, checkpoint, option), found before the work starts.
USAGE_ERRORS = frozenset({
    ("trainer.recipe.errors", "RecipeError"),
    ("trainer.data.errors", "DataError"),
    ("trainer.files", "FileReadError"),
    ("trainer.registry", "UnknownNameError"),
    ("trainer.engine.session", "BuildError"),
    ("trainer.engine.checkpoint", "CheckpointError"),
    ("trainer.engine.device", "DeviceError"),
    ("trainer.models.weights", "WeightsError"),
    ("trainer.models.build", "ModelBuildError"),
    ("trainer.models.backbones.timm_backbone", "TimmNotInstalledError"),
    ("trainer.head_choice", "HeadChoiceError"),
})
# Exit code 1: a run that was built and started, then stopped; the message says what was kept.
RUN_FAILURES = frozenset({("trainer.engine.failures", "RunFailure")})
# OS errors about a path the user named: exit code 2
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _is_one_of(error: BaseException, classes: frozenset[tuple[str, str]]) -> bool:
    return any((cls.__module__, cls.__qualname__) in classes for cls in type(error).__mro__)


def error_message(error: BaseException) -> tuple[str, int]:
    """What the command line prints for an exception that ended a command, and the exit code."""
    text = ANSI_ESCAPE.sub("", worker_error_message(error))
    if _is_one_of(error, USAGE_ERRORS):
        return (text if text.startswith("recipe error") else f"error: {text}"), 2
    if _is_one_of(error, RUN_FAILURES):
        return f"run stopped: {text}", 1
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = f" while writing {error.filename}" if error.filename else ""
        return f"error: disk full (No space left on device){where}", 1
    if isinstance(error, PATH_ERRORS):
        return f"error: {text}", 2
    if isinstance(error, MemoryError):
        return "error: out of memory (MemoryError); try a smaller batch_size or image size", 1
    described = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return f"error: unexpected {described} (run with --debug for the traceback)", 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Data warnings (repaired data, e.g. boxes clipped to the image) as one line; others as Python shows them."""
    if issubclass(category, DataWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


def run_guarded(action: Callable[[], object]) -> object:
    """Run a command; every exception becomes one message and an exit code, no traceback (unless --debug)."""
    with warnings.catch_warnings():
        warnings.simplefilter("default", DataWarning)
        warnings.showwarning = _show_warning
        try:
            return action()
        except typer.Exit:
            raise
        except Exception as error:
            if _state["debug"]:
                raise
            message, code = error_message(error)
            print(message, file=sys.stderr)
            raise typer.Exit(code=code) from None


def split_arguments(arguments: list[str]) -> tuple[list[str], list[str]]:
    """Recipe files and KEY=VALUE overrides may be given in any order."""
    recipes = [a for a in arguments if "=" not in a or Path(a).exists()]
    overrides = [a for a in arguments if a not in recipes]
    return recipes, overrides


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks.")) -> None:
    _state["debug"] = debug


@app.command()
def train(
    arguments: Optional[list[str]] = typer.Argument(None, help="RECIPE.yaml files, then KEY=VALUE overrides."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Parent of the run directory."),
    name: Optional[str] = typer.Option(None, "--name", help="Run directory name."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the run in RUN_DIR."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes on this machine (re-launches under torchrun)."),
) -> None:
    """Train a model; prints the run directory at the end."""
    recipes, overrides = split_arguments(arguments or [])
    if nproc > 1:
        def check_before_launch() -> None:  # one message (exit 2) instead of one per worker
            from trainer.commands.train import check_launch

            check_options(device=device, name=name, output_dir=output_dir)
            check_launch(recipes=recipes, overrides=overrides, resume=resume, device=device, nproc=nproc)

        run_guarded(check_before_launch)
        argv = ["--debug"] if _state["debug"] else []
        argv += ["train", *(arguments or [])]
        for option, value in (("--output-dir", output_dir), ("--name", name), ("--resume", resume),
                              ("--device", device)):
            argv += [option, value] if value is not None else []
        from trainer.commands.launch import launch_torchrun

        raise typer.Exit(code=launch_torchrun(nproc=nproc, argv=argv))

    def action() -> Path:
        from trainer.commands.train import train as train_run

        check_options(device=device, name=name, output_dir=output_dir)
        return train_run(recipes=recipes, overrides=overrides, output_dir=output_dir, name=name, resume=resume,
                         device=device)

    run_dir = run_guarded(action)
    if int(os.environ.get("RANK", "0")) == 0:
        from trainer.engine.reporting import console

        console.print(f"run directory: {run_dir}")


@app.command("eval")
def evaluate(
    target: str = typer.Argument(..., help="RUN_DIR or RECIPE.yaml"),
    overrides: Optional[list[str]] = typer.Argument(None, help="KEY=VALUE overrides."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights to evaluate (default best.pt)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write {task, metrics} to this file."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps"),
) -> None:
    """Evaluate a run (or a recipe with --checkpoint); prints a metrics table."""
    def action() -> None:
        from trainer.commands.evaluate import evaluate_command

        check_options(device=device)
        evaluate_command(target=target, overrides=overrides or [], checkpoint=checkpoint, json_path=json_path,
                         device=device)

    run_guarded(action)


@app.command()
def show(
    arguments: list[str] = typer.Argument(..., help="RECIPE.yaml files, then KEY=VALUE overrides."),
    diff: bool = typer.Option(False, "--diff", help="Only what differs from the defaults."),
    sources: bool = typer.Option(False, "--sources", help="Every value with the file:line or override it came from."),
) -> None:
    """Print the fully resolved recipe as YAML."""
    recipes, overrides = split_arguments(arguments)

    def action() -> str:
        from trainer.commands.show import show_command

        return show_command(recipes=recipes, overrides=overrides, diff=diff, sources=sources)

    print(run_guarded(action), end="")


@app.command()
def check(
    arguments: list[str] = typer.Argument(..., help="RECIPE.yaml files, then KEY=VALUE overrides."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps"),
) -> None:
    """Validate, build everything and run one batch forward and backward; writes nothing."""
    recipes, overrides = split_arguments(arguments)

    def action() -> None:
        from trainer.commands.check import check_command

        check_options(device=device)
        check_command(recipes=recipes, overrides=overrides, device=device)

    run_guarded(action)


@app.command("list")
def list_components(kind: Optional[str] = typer.Argument(None, help="losses, models, heads, datasets, ...")) -> None:
    """What the registries hold."""
    def action() -> None:
        from trainer.commands.listing import list_command

        list_command(kind)

    run_guarded(action)


@app.command()
def new(
    task: str = typer.Option(..., "--task", help="classification | detection | segmentation"),
    loss: Optional[str] = typer.Option(None, "--loss", help="Criterion (default per task); picks the model."),
    model: Optional[str] = typer.Option(None, "--model", help="A backbone or a full model name."),
    data: str = typer.Option("shapes", "--data", help="Dataset format: shapes, image_folder, coco, yolo, ..."),
    out: Optional[str] = typer.Option(None, "--out", help="Write to this new file instead of printing."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Print a minimal, commented, valid recipe to start from."""
    def action() -> str:
        from trainer.commands.new import new_command

        return new_command(task=task, loss=loss, model=model, data=data, out=out, force=force)

    text = run_guarded(action)
    if out is None:
        print(text, end="")


@app.command()
def schema(
    out: Optional[str] = typer.Option(None, "--out", help="Write to this file instead of printing."),
    imports: Optional[list[str]] = typer.Option(None, "--import", help="Also list this module's components."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Print the recipe JSON Schema (for editor completion and checks)."""
    def action() -> str:
        from trainer.commands.schema import schema_command

        return schema_command(out=out, imports=imports or [], force=force)

    text = run_guarded(action)
    if out is None:
        print(text, end="")


@app.command()
def predict(
    target: str = typer.Argument(..., help="RUN_DIR or CHECKPOINT.pt"),
    images: list[str] = typer.Argument(..., help="Image files and folders (searched recursively)."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (default RUN_DIR/predictions)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights in RUN_DIR (default best.pt)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps"),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Classes listed per image (classification)."),
    draw_threshold: float = typer.Option(0.3, "--draw-threshold", help="Least score of a drawn box (detection)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    force: bool = typer.Option(False, "--force", help="Overwrite earlier predictions in the output folder."),
) -> None:
    """Predict on images: JSON (COCO results for detection), masks, and drawn images."""
    def action() -> None:
        from trainer.commands.predict import predict_command

        check_options(device=device)
        predict_command(target=target, inputs=images, out=out, device=device, top_k=top_k,
                        draw_threshold=draw_threshold, batch_size=batch_size, checkpoint=checkpoint, force=force)

    run_guarded(action)


@app.command()
def export(
    target: str = typer.Argument(..., help="RUN_DIR or CHECKPOINT.pt"),
    fmt: str = typer.Option(..., "--format", help="onnx | torchscript"),
    out: Optional[str] = typer.Option(None, "--out", help="Output file (default RUN_DIR/export/best.onnx)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights in RUN_DIR (default best.pt)."),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="S or H,W (default: from the recipe)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing export."),
) -> None:
    """Export the model (ONNX or TorchScript) and check it against PyTorch."""
    def action() -> None:
        from trainer.commands.export import ExportFailed, export_command

        try:
            export_command(target=target, fmt=fmt, out=out, image_size=image_size, checkpoint=checkpoint,
                           force=force)
        except ExportFailed as error:
            print(f"export check failed: {error}", file=sys.stderr)
            raise typer.Exit(code=1) from None

    run_guarded(action)


data_app = typer.Typer(no_args_is_help=True, help="Data sets as files: export the built-in shapes, convert formats.")
app.add_typer(data_app, name="data")


@data_app.command("shapes")
def data_shapes(
    task: str = typer.Option(..., "--task", help="classification | detection | segmentation"),
    fmt: str = typer.Option(..., "--format", help="image_folder | coco | yolo | mask_folder"),
    out: str = typer.Option(..., "--out", help="New (or empty) folder to write."),
    num_images: int = typer.Option(200, "--num-images", help="Images per split."),
    image_size: int = typer.Option(64, "--image-size", help="Side of the square images, pixels."),
    split: str = typer.Option("train,val", "--split", help="Comma-separated: train, val, test."),
    seed: int = typer.Option(0, "--seed", help="Same seed = the same images as data.format shapes."),
    force: bool = typer.Option(False, "--force", help="Write into an existing folder, replacing its files."),
) -> None:
    """Write the built-in synthetic shapes in a standard layout (plus its recipe data section)."""
    def action() -> None:
        from trainer.commands.data_export import shapes_command

        shapes_command(task=task, fmt=fmt, out=out, num_images=num_images, image_size=image_size, split=split,
                       seed=seed, force=force)

    run_guarded(action)


@data_app.command("convert")
def data_convert(
    source: str = typer.Argument(..., help="YOLO root folder or data yaml; or a COCO instances JSON."),
    source_format: str = typer.Option(..., "--from", help="yolo | coco"),
    target_format: str = typer.Option(..., "--to", help="coco | yolo"),
    out: str = typer.Option(..., "--out", help="COCO JSON file, or a new YOLO root folder."),
    split: str = typer.Option("train", "--split", help="Split to read (YOLO) or to write (YOLO)."),
    images_dir: Optional[str] = typer.Option(None, "--images-dir", help="COCO: the folder file_name is relative to."),
    symlink: bool = typer.Option(False, "--symlink", help="COCO -> YOLO: link the images instead of copying."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file, or write into a folder."),
) -> None:
    """Convert detection annotations between YOLO txt files and a COCO JSON."""
    def action() -> None:
        from trainer.commands.data_export import convert_command

        convert_command(source_format=source_format, target_format=target_format, source=source, out=out,
                        split=split, images_dir=images_dir, symlink=symlink, force=force)

    run_guarded(action)


@app.command()
def docs(
    out: Optional[str] = typer.Option(None, "--out", help="Write here (e.g. docs/recipes.md) instead of printing."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if --out (default docs/recipes.md) is out of date."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """The recipe reference (every field, every component's options) as Markdown."""
    def action() -> tuple[str, bool]:
        from trainer.commands.docs import docs_command

        return docs_command(out=out, check=check, force=force)

    text, up_to_date = run_guarded(action)
    if check:
        if not up_to_date:
            print("docs are out of date; regenerate with: trainer docs --out docs/recipes.md --force", file=sys.stderr)
            raise typer.Exit(code=1)
        print("docs are up to date")
    elif out is None:
        print(text, end="")


if __name__ == "__main__":
    app()
