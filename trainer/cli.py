"""The `trainer` command line: parse arguments, call one function per command, map errors to exit
codes (0 success, 2 recipe or usage error, 1 failure during the run)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional

import typer

from trainer.data.errors import DataError, DataWarning
from trainer.data.loaders import worker_error_message
from trainer.engine.checkpoint import CheckpointError
from trainer.engine.device import DeviceError
from trainer.engine.fit import DataFailure, Interrupted, NonFiniteLossError
from trainer.engine.reporting import console
from trainer.engine.session import BuildError
from trainer.recipe import RecipeError
from trainer.registry import UnknownNameError

app = typer.Typer(
    add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train, evaluate and export vision models from YAML recipes.")
_state = {"debug": False}

USAGE_ERRORS = (RecipeError, DataError, BuildError, CheckpointError, UnknownNameError, FileNotFoundError, DeviceError)
RUN_FAILURES = (NonFiniteLossError, Interrupted, DataFailure)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Data warnings (repaired data, e.g. boxes clipped to the image) as one line; others as Python shows them."""
    if issubclass(category, DataWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


def run_guarded(action: Callable[[], object]) -> object:
    """Run a command; expected errors become one message and an exit code, no traceback."""
    with warnings.catch_warnings():
        warnings.simplefilter("default", DataWarning)
        warnings.showwarning = _show_warning
        return _run_mapping_errors(action)


def _run_mapping_errors(action: Callable[[], object]) -> object:
    try:
        return action()
    except USAGE_ERRORS as error:
        if _state["debug"]:
            raise
        message = str(error) if isinstance(error, RecipeError) else f"error: {worker_error_message(error)}"
        print(message, file=sys.stderr)
        raise typer.Exit(code=2) from None
    except RUN_FAILURES as error:
        if _state["debug"]:
            raise
        print(f"run stopped: {error}", file=sys.stderr)
        raise typer.Exit(code=1) from None
    except typer.Exit:
        raise
    except Exception as error:  # unexpected: one line here, the traceback under --debug
        if _state["debug"]:
            raise
        print(f"error: {type(error).__name__}: {worker_error_message(error)} (run with --debug for the traceback)",
              file=sys.stderr)
        raise typer.Exit(code=1) from None


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
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes on this machine (re-launches under torchrun)."),
) -> None:
    """Train a model; prints the run directory at the end."""
    recipes, overrides = split_arguments(arguments or [])
    if nproc > 1:
        from trainer.commands.launch import launch_torchrun
        from trainer.commands.train import check_launch

        run_guarded(lambda: check_launch(recipes=recipes, overrides=overrides, resume=resume, device=device,
                                         nproc=nproc))  # one message (exit 2) instead of one per worker
        argv = ["--debug"] if _state["debug"] else []
        argv += ["train", *(arguments or [])]
        for option, value in (("--output-dir", output_dir), ("--name", name), ("--resume", resume),
                              ("--device", device)):
            argv += [option, value] if value is not None else []
        raise typer.Exit(code=launch_torchrun(nproc=nproc, argv=argv))
    from trainer.commands.train import train as train_run

    run_dir = run_guarded(lambda: train_run(recipes=recipes, overrides=overrides, output_dir=output_dir, name=name,
                                            resume=resume, device=device))
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(f"run directory: {run_dir}")


@app.command("eval")
def evaluate(
    target: str = typer.Argument(..., help="RUN_DIR or RECIPE.yaml"),
    overrides: Optional[list[str]] = typer.Argument(None, help="KEY=VALUE overrides."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights to evaluate (default best.pt)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write {task, metrics} to this file."),
    device: Optional[str] = typer.Option(None, "--device"),
) -> None:
    """Evaluate a run (or a recipe with --checkpoint); prints a metrics table."""
    from trainer.commands.evaluate import evaluate_command

    run_guarded(lambda: evaluate_command(target=target, overrides=overrides or [], checkpoint=checkpoint,
                                         json_path=json_path, device=device))


@app.command()
def show(
    arguments: list[str] = typer.Argument(..., help="RECIPE.yaml files, then KEY=VALUE overrides."),
    diff: bool = typer.Option(False, "--diff", help="Only what differs from the defaults."),
) -> None:
    """Print the fully resolved recipe as YAML."""
    from trainer.commands.show import show_command

    recipes, overrides = split_arguments(arguments)
    print(run_guarded(lambda: show_command(recipes=recipes, overrides=overrides, diff=diff)), end="")


@app.command()
def check(
    arguments: list[str] = typer.Argument(..., help="RECIPE.yaml files, then KEY=VALUE overrides."),
    device: Optional[str] = typer.Option(None, "--device"),
) -> None:
    """Validate, build everything and run one batch forward and backward; writes nothing."""
    from trainer.commands.check import check_command

    recipes, overrides = split_arguments(arguments)
    run_guarded(lambda: check_command(recipes=recipes, overrides=overrides, device=device))


@app.command("list")
def list_components(kind: Optional[str] = typer.Argument(None, help="losses, models, heads, datasets, ...")) -> None:
    """What the registries hold."""
    from trainer.commands.listing import list_command

    run_guarded(lambda: list_command(kind))


@app.command()
def new(
    task: str = typer.Option(..., "--task", help="classification | detection | segmentation"),
    loss: Optional[str] = typer.Option(None, "--loss", help="Criterion (default per task); picks the model."),
    model: Optional[str] = typer.Option(None, "--model", help="A backbone or a full model name."),
    data: str = typer.Option("shapes", "--data", help="Dataset format: shapes, image_folder, coco, yolo, ..."),
    out: Optional[str] = typer.Option(None, "--out", help="Write to this new file instead of printing."),
) -> None:
    """Print a minimal, commented, valid recipe to start from."""
    from trainer.commands.new import new_command

    text = run_guarded(lambda: new_command(task=task, loss=loss, model=model, data=data, out=out))
    if out is None:
        print(text, end="")


@app.command()
def schema(
    out: Optional[str] = typer.Option(None, "--out", help="Write to this file instead of printing."),
    imports: Optional[list[str]] = typer.Option(None, "--import", help="Also list this module's components."),
) -> None:
    """Print the recipe JSON Schema (for editor completion and checks)."""
    from trainer.recipe.json_schema import schema_command

    text = run_guarded(lambda: schema_command(out=out, imports=imports or []))
    if out is None:
        print(text, end="")


@app.command()
def predict(
    target: str = typer.Argument(..., help="RUN_DIR or CHECKPOINT.pt"),
    images: list[str] = typer.Argument(..., help="Image files and folders (searched recursively)."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (default RUN_DIR/predictions)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights in RUN_DIR (default best.pt)."),
    device: Optional[str] = typer.Option(None, "--device"),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Classes listed per image (classification)."),
    draw_threshold: float = typer.Option(0.3, "--draw-threshold", help="Least score of a drawn box (detection)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
) -> None:
    """Predict on images: JSON (COCO results for detection), masks, and drawn images."""
    from trainer.commands.predict import predict_command

    run_guarded(lambda: predict_command(target=target, inputs=images, out=out, device=device, top_k=top_k,
                                        draw_threshold=draw_threshold, batch_size=batch_size, checkpoint=checkpoint))


@app.command()
def export(
    target: str = typer.Argument(..., help="RUN_DIR or CHECKPOINT.pt"),
    fmt: str = typer.Option(..., "--format", help="onnx | torchscript"),
    out: Optional[str] = typer.Option(None, "--out", help="Output file (default RUN_DIR/export/best.onnx)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights in RUN_DIR (default best.pt)."),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="S or H,W (default: from the recipe)."),
) -> None:
    """Export the model (ONNX or TorchScript) and check it against PyTorch."""
    from trainer.commands.export import ExportFailed, export_command

    def action() -> None:
        try:
            export_command(target=target, fmt=fmt, out=out, image_size=image_size, checkpoint=checkpoint)
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
) -> None:
    """Write the built-in synthetic shapes in a standard layout (plus its recipe data section)."""
    from trainer.commands.data_export import shapes_command

    run_guarded(lambda: shapes_command(task=task, fmt=fmt, out=out, num_images=num_images, image_size=image_size,
                                       split=split, seed=seed))


@data_app.command("convert")
def data_convert(
    source: str = typer.Argument(..., help="YOLO root folder or data yaml; or a COCO instances JSON."),
    source_format: str = typer.Option(..., "--from", help="yolo | coco"),
    target_format: str = typer.Option(..., "--to", help="coco | yolo"),
    out: str = typer.Option(..., "--out", help="COCO JSON file, or a new YOLO root folder."),
    split: str = typer.Option("train", "--split", help="Split to read (YOLO) or to write (YOLO)."),
    images_dir: Optional[str] = typer.Option(None, "--images-dir", help="COCO: the folder file_name is relative to."),
    symlink: bool = typer.Option(False, "--symlink", help="COCO -> YOLO: link the images instead of copying."),
) -> None:
    """Convert detection annotations between YOLO txt files and a COCO JSON."""
    from trainer.commands.data_export import convert_command

    run_guarded(lambda: convert_command(source_format=source_format, target_format=target_format, source=source,
                                        out=out, split=split, images_dir=images_dir, symlink=symlink))


@app.command()
def docs(
    out: Optional[str] = typer.Option(None, "--out", help="Write here (e.g. docs/recipes.md) instead of printing."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if --out (default docs/recipes.md) is out of date."),
) -> None:
    """The recipe reference (every field, every component's options) as Markdown."""
    from trainer.commands.docs import docs_command

    text, up_to_date = run_guarded(lambda: docs_command(out=out, check=check))
    if check:
        if not up_to_date:
            print("docs are out of date; regenerate with: trainer docs --out docs/recipes.md", file=sys.stderr)
            raise typer.Exit(code=1)
        print("docs are up to date")
    elif out is None:
        print(text, end="")


if __name__ == "__main__":
    app()
