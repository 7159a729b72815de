"""Options whose length must match the number of classes, known only once the data is read
(`class_weights` of a loss): checked at build time, reported as recipe errors at their lines."""

from __future__ import annotations

from trainer.recipe.errors import RecipeError, RecipeIssue
from trainer.recipe.locations import Locations
from trainer.recipe.schema import Recipe

PER_CLASS_OPTIONS = ("class_weights",)


def check_class_counts(recipe: Recipe, locations: Locations, *, class_names: list[str]) -> None:
    """Raise one RecipeError naming every per-class option whose length is not the number of classes."""
    issues = []
    for index, spec in enumerate(recipe.model.loss_specs()):
        for option in PER_CLASS_OPTIONS:
            values = spec.options.get(option)
            if isinstance(values, list) and len(values) != len(class_names):
                path = ("model", "losses", index, option)
                message = (f"{len(values)} values for {len(class_names)} classes; give one per class, in the "
                           f"order of the data's class names ({', '.join(class_names)})")
                issues.append(RecipeIssue(path, message, locations.find(path)))
    if issues:
        raise RecipeError(issues)
