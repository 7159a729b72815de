"""Command-line options checked like recipe values, before a command builds or writes anything: a bad
`--device`, `--name` or `--output-dir` is a RecipeError (exit code 2) naming the option."""

from __future__ import annotations

from trainer.output_files import output_folder_problem


def check_options(*, device: str | None = None, name: str | None = None, output_dir: str | None = None) -> None:
    """Raise one RecipeError naming every bad option; return quietly when all are fine."""
    from trainer.recipe.errors import RecipeError, RecipeIssue

    problems = []
    if device is not None:
        from trainer.engine.device import device_problem  # imports torch: only when the option is given

        problems.append(("--device", device_problem(device)))
    if name is not None:
        from trainer.recipe.schema import RUN_NAME  # the rule of logging.name

        problems.append(("--name", RUN_NAME.problem(name)))
    if output_dir is not None:
        problems.append(("--output-dir", output_folder_problem(output_dir)))
    issues = [RecipeIssue((), problem, where=option) for option, problem in problems if problem is not None]
    if issues:
        raise RecipeError(issues)
