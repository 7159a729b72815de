"""The `trainer` command line: parse arguments, call one function per command, map errors to exit
codes (0 success, 2 recipe or usage error, 1 failure during the run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from trainer.data.errors import DataError
from trainer.engine.checkpoint import CheckpointError
from trainer.engine.fit import Interrupted, NonFiniteLossError
from trainer.engine.reporting import console
from trainer.engine.session import BuildError
from trainer.recipe import RecipeError
from trainer.registry import UnknownNameError

app = typer.Typer(
    add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train, evaluate and export vision models from YAML recipes.")
_state = {"debug": False}

USAGE_ERRORS = (RecipeError, DataError, BuildError, CheckpointError, UnknownNameError, FileNotFoundError)
RUN_FAILURES = (NonFiniteLossError, Interrupted)


def run_guarded(action: Callable[[], object]) -> object:
    """Run a command; expected errors become one message and an exit code, no traceback."""
    try:
        return action()
    except USAGE_ERRORS as error:
        if _state["debug"]:
            raise
        message = str(error) if isinstance(error, RecipeError) else f"error: {error}"
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
        print(f"error: {type(error).__name__}: {error} (run with --debug for the traceback)", file=sys.stderr)
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
    nproc: int = typer.Option(1, "--nproc", help="Processes on this machine (re-launches under torchrun)."),
) -> None:
    """Train a model; prints the run directory at the end."""
    recipes, overrides = split_arguments(arguments or [])
    if nproc > 1:
        from trainer.commands.launch import launch_torchrun

        raise typer.Exit(code=launch_torchrun(nproc=nproc, argv=sys.argv[1:]))
    from trainer.commands.train import train as train_run

    run_dir = run_guarded(lambda: train_run(recipes=recipes, overrides=overrides, output_dir=output_dir, name=name,
                                            resume=resume, device=device))
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


if __name__ == "__main__":
    app()
