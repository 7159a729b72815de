"""`trainer new --task T [--loss CRITERION] [--model NAME] [--data FORMAT]`: a minimal, commented
recipe that validates as printed (and, on the synthetic shapes, trains as printed).

The architecture follows from the loss: the loss's default head for the task, and for that head a
backbone and neck that suit it (YOLOX-nano: cspdarknet_nano + depthwise pafpn and head; RetinaNet:
resnet18 + fpn); a loss trained by a whole network (pidnet_loss) gets that network. On the built-in
shapes the template is a recipe that trains as printed: data sizes, epochs and batch size of the
model's shipped shapes recipe, everything else left to the defaults (`scripts/bench_defaults.py`
trains these templates; docs/benchmarks.md "Defaults that train").
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Any

import yaml

from trainer.components import load_builtin_components
from trainer.output_files import output_file_problem, write_output_file
from trainer.recipe import RecipeError, RecipeIssue
from trainer.recipe.load import Locations, parse_yaml_value
from trainer.recipe.schema import TASKS
from trainer.recipe.validate import validate_raw_recipe
from trainer.registry import (
    BACKBONES,
    DATASETS,
    FULL_MODELS,
    HEADS,
    LOSSES,
    NECKS,
    OPTIMIZERS,
    SCHEDULERS,
    Registry,
    UnknownNameError,
    closest_name,
)
from trainer.tasks import task_class

DEFAULT_LOSS = {"classification": "cross_entropy", "detection": "yolox_loss", "segmentation": "pidnet_loss"}
DEFAULT_BACKBONE = "resnet18"
HEADS_WRITTEN_OUT = {  # written in the template (with these options) although the losses imply them
    "seg_head": {},
    "anchor_free_decoupled": {"depthwise": True},  # YOLOX-nano
}
BACKBONE_FOR_HEAD = {"anchor_free_decoupled": "cspdarknet_nano"}
NECK_FOR_HEAD = {
    "anchor_free_decoupled": {"name": "pafpn", "depthwise": True},
    "anchor_decoupled": {"name": "fpn"},
}
SHAPES_STARTER = {  # head or full model -> (train, val, epochs, batch size) on shapes, as its shipped recipe
    "fc": ({"num_images": 3000, "image_size": 48}, {"num_images": 400, "image_size": 48}, 6, 32),
    "anchor_free_decoupled": ({"num_images": 4000, "image_size": 48, "max_shapes": 2},
                              {"num_images": 200, "image_size": 48, "max_shapes": 2}, 16, 16),
    "anchor_decoupled": ({"num_images": 3200, "image_size": 48, "max_shapes": 2},
                         {"num_images": 200, "image_size": 48, "max_shapes": 2}, 5, 16),
    "pidnet": ({"num_images": 4096, "image_size": 128}, {"num_images": 128, "image_size": 128}, 3, 16),
    "seg_head": ({"num_images": 1024, "image_size": 64}, {"num_images": 128, "image_size": 64}, 8, 16),  # 6: 0.77
}
FULL_OPTIONS = {"pidnet": {"size": "s"}}
DATA = {  # (comment, train options, val options)
    "shapes": ("the built-in synthetic shapes: no files needed",
               {"num_images": 128, "image_size": 64}, {"num_images": 32, "image_size": 64}),
    "image_folder": ("<root>/<class name>/<image> (or <root>/<split>/<class name>/<image>)",
                     {"root": "data/images/train"}, {"root": "data/images/val"}),
    "coco": ("a COCO instances JSON and its images",
             {"images_dir": "data/coco/train2017", "annotations": "data/coco/annotations/instances_train2017.json"},
             {"images_dir": "data/coco/val2017", "annotations": "data/coco/annotations/instances_val2017.json"}),
    "yolo": ("<root>/images/<split>/ and <root>/labels/<split>/ (or data_yaml: an Ultralytics data.yaml)",
             {"root": "data/yolo"}, {"root": "data/yolo"}),
    "mask_folder": ("<root>/images/<split>/ and <root>/masks/<split>/ (PNG class indices, 255 = ignore)",
                    {"root": "data/masks", "class_names": ["background", "object"]},
                    {"root": "data/masks", "class_names": ["background", "object"]}),
}
FILE_AUGMENTATION = {  # real images differ in size: bring them to one size
    "classification": ([{"name": "random_resized_crop", "size": 224}, {"name": "hflip", "p": 0.5}],
                       [{"name": "resize", "size": 256}, {"name": "center_crop", "size": 224}]),
    "detection": ([{"name": "hflip", "p": 0.5}, {"name": "letterbox", "size": 640}],
                  [{"name": "letterbox", "size": 640}]),
    "segmentation": ([{"name": "random_resized_crop", "size": 512, "scale": [0.5, 1.0]}, {"name": "hflip", "p": 0.5}],
                     [{"name": "resize", "size": [512, 512]}]),
}
TRAINING = {  # epochs and batch size for data on disk; optimizer auto (picked from task, model, batch and
    # steps) and cosine with the task's warmup, the defaults, everywhere (docs/benchmarks.md "Defaults that train")
    "classification": (5, 16),
    "detection": (10, 8),
    "segmentation": (10, 8),
}


def _usage(message: str, where: str) -> RecipeError:
    return RecipeError([RecipeIssue((), message, where=where)])


def flow(value: Any) -> str:
    """One-line YAML: {name: resnet18, pretrained: null} -> '{name: resnet18, pretrained: null}'."""
    return yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=1000).strip()[1:-1]


def options_comment(registry: Registry, name: str) -> str:
    """'options: a=1, b=null' from the constructor signature (less the arguments the registry declares as
    filled in by the trainer), always in step with the code."""
    parts = []
    for option, parameter in registry.options(name).items():
        default = parameter.default
        if default is inspect.Parameter.empty:
            parts.append(f"{option} (required)")
        else:
            parts.append(f"{option}={flow(list(default) if isinstance(default, tuple) else default)}")
    return "options: " + (", ".join(parts) if parts else "none")


def choose_architecture(*, task: str, criterion: str, model: str | None) -> dict[str, dict[str, Any]]:
    heads = list(LOSSES.meta(criterion).get("heads", {}).get(task, ()))
    if not heads:
        trained = [t for t in TASKS if LOSSES.meta(criterion).get("heads", {}).get(t)]
        losses = [name for name in LOSSES.names() if LOSSES.meta(name).get("heads", {}).get(task)]
        raise _usage(f"criterion '{criterion}' trains {' or '.join(trained) or 'no task'}, not {task} "
                     f"(losses for {task}: {', '.join(losses)})", "--loss")
    full_models = [head for head in heads if head in FULL_MODELS]
    if model is not None and model not in BACKBONES and model not in FULL_MODELS:
        raise UnknownNameError(kind="model (backbone or full model)", name=model,
                               choices=BACKBONES.names() + FULL_MODELS.names())
    if model in FULL_MODELS or (model is None and heads[0] in FULL_MODELS):
        name = model or heads[0]
        if name not in full_models:
            raise _usage(f"model '{name}' cannot be trained by {criterion} for {task} "
                         f"(compatible: {', '.join(heads)})", "--model")
        return {"full": {"name": name, **FULL_OPTIONS.get(name, {})}}
    head = next((h for h in heads if h in HEADS), None)
    if head is None:
        raise _usage(f"{criterion} trains only whole models for {task}: {', '.join(heads)}", "--model")
    architecture = {"backbone": {"name": model or BACKBONE_FOR_HEAD.get(head, DEFAULT_BACKBONE)}}
    if head in NECK_FOR_HEAD:
        architecture["neck"] = dict(NECK_FOR_HEAD[head])
    if head in HEADS_WRITTEN_OUT:
        architecture["head"] = {"name": head, **HEADS_WRITTEN_OUT[head]}
    return architecture


def template_head(architecture: dict[str, dict[str, Any]], *, task: str, criterion: str) -> str:
    """The head (or whole model) the template trains: written out, or the one the loss implies."""
    if "full" in architecture:
        return architecture["full"]["name"]
    if "head" in architecture:
        return architecture["head"]["name"]
    return next(h for h in LOSSES.meta(criterion)["heads"][task] if h in HEADS)


def _architecture_lines(architecture: dict[str, dict[str, Any]], *, task: str, criterion: str) -> list[str]:
    registries = {"backbone": BACKBONES, "neck": NECKS, "head": HEADS, "full": FULL_MODELS}
    lines = ["  architecture:"]
    for part, entry in architecture.items():
        lines += _comment(f"{entry['name']} {options_comment(registries[part], entry['name'])}", indent=4)
        lines.append(f"    {part}: {flow(entry)}")
    if "full" not in architecture and "head" not in architecture:
        head = template_head(architecture, task=task, criterion=criterion)
        lines += _comment(f"head: {{name: {head}}} follows from {criterion}; write it out to set options", indent=4)
        lines += _comment(f"{head} {options_comment(HEADS, head)}", indent=4)
    return lines


def _comment(text: str, *, indent: int) -> list[str]:
    return textwrap.wrap(text, width=110, initial_indent=" " * indent + "# ", subsequent_indent=" " * indent + "#   ")


def _loss_lines(*, task: str, criterion: str) -> list[str]:
    options = options_comment(LOSSES, criterion) + "; and weight (multiplier), name, exclude, inputs"
    lines = [f"    - criterion: {criterion}", *_comment(options, indent=6)]
    accepted = LOSSES.options(criterion)
    for option, value in task_class(task).loss_defaults.items():  # shown where they differ from the loss's own
        if option in accepted and accepted[option].default != value:
            lines.append(f"      {option}: {flow(value)}  # the {task} default (also filled in when left out)")
    return lines


def _data_lines(*, task: str, data: str, head: str) -> list[str]:
    comment, train, val = DATA.get(data, ("", {}, {}))
    if data == "shapes" and head in SHAPES_STARTER:
        train, val = SHAPES_STARTER[head][:2]
    lines = ["data:" + (f"  # {comment}" if comment else ""), f"  format: {data}"]
    if data not in DATA:
        lines += _comment(f"{data} {options_comment(DATASETS, data)}", indent=2)
    lines += [f"  train: {flow(train)}", f"  val: {flow(val)}", ""]
    header = "augmentation:  # torchvision.transforms.v2 in order; normalize (last) runs on the device"
    if data == "shapes":  # trains as printed without any; shown for the next step
        return lines + ["# " + header, "#   train: [{name: hflip, p: 0.5}, {name: normalize}]",
                        "#   val: [{name: normalize}]"]
    lines.append(header)
    for split, entries in zip(("train", "val"), FILE_AUGMENTATION[task]):
        lines.append(f"  {split}:")
        lines += [f"    - {flow(entry)}" for entry in entries + [{"name": "normalize"}]]
    return lines


def new_recipe(*, task: str, loss: str | None = None, model: str | None = None, data: str = "shapes",
               file_name: str = "recipe.yaml") -> str:
    """The recipe text (its comments name `file_name`); raises RecipeError / UnknownNameError for names
    that do not fit together."""
    load_builtin_components()
    if task not in TASKS:
        suggestion = closest_name(task, TASKS)
        hint = f"; did you mean '{suggestion}'?" if suggestion else ""
        raise _usage(f"unknown task '{task}'{hint} (choices: {', '.join(TASKS)})", "--task")
    criterion = loss or DEFAULT_LOSS[task]
    LOSSES.get(criterion)
    DATASETS.get(data)
    if task not in DATASETS.meta(data).get("tasks", TASKS):
        raise _usage(f"dataset '{data}' holds {' or '.join(DATASETS.meta(data)['tasks'])} data, not {task}", "--data")
    architecture = choose_architecture(task=task, criterion=criterion, model=model)
    head = template_head(architecture, task=task, criterion=criterion)
    epochs, batch_size = SHAPES_STARTER[head][2:] if data == "shapes" and head in SHAPES_STARTER else TRAINING[task]
    parts = " + ".join(entry["name"] for entry in architecture.values())
    command = " ".join(f"--{k} {v}" for k, v in (("task", task), ("loss", loss), ("model", model), ("data", data)) if v)
    width = len("trainer check ") + len(file_name)
    lines = [
        f"# A {task} recipe: {criterion} on {parts}, {data} data.",
        f"# Made by `trainer new {command}`. Next:",
        f"#   {'trainer check ' + file_name:<{width}}  builds everything and runs one batch forward and backward",
        f"#   {'trainer train ' + file_name:<{width}}  trains; prints the run directory",
        f"#   {'trainer show ' + file_name:<{width}}  every field with its value (defaults included)",
        "# Editor completion: `trainer schema --out recipe.schema.json`, then start this file with",
        "#   # yaml-language-server: $schema=recipe.schema.json",
        f"task: {task}",
        "",
        *_data_lines(task=task, data=data, head=head),
        "",
        "model:",
        *_architecture_lines(architecture, task=task, criterion=criterion),
        "  losses:",
        *_loss_lines(task=task, criterion=criterion),
        "",
        "training:",
        f"  epochs: {epochs}",
        f"  batch_size: {batch_size}",
        f"  optimizer: {{name: auto}}  # {' | '.join(OPTIMIZERS.names())}; auto prints what it picked",
        f"  scheduler: {{name: cosine}}  # {' | '.join(SCHEDULERS.names())}; warmup_epochs: the task's",
        "",
        "logging:",
        "  output_dir: runs",
        "",
    ]
    text = "\n".join(lines)
    validate_raw_recipe(parse_yaml_value(text), Locations())
    return text


def new_command(*, task: str, loss: str | None = None, model: str | None = None, data: str = "shapes",
                out: str | None = None, force: bool = False) -> str:
    """The recipe text; also written to `out` (a new file, or an existing one with `force`)."""
    if out is not None and (problem := output_file_problem(out, force=force)) is not None:
        raise _usage(problem, "--out")
    file_name = Path(out).name if out is not None else "recipe.yaml"
    text = new_recipe(task=task, loss=loss, model=model, data=data, file_name=file_name)
    if out is not None:
        write_output_file(out, text, force=force)
    return text
