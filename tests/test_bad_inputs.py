"""The bad-input catalogue: malformed recipes, data, checkpoints and command lines.

Each case builds its inputs in tmp_path and runs the CLI. Every case must end with the expected exit
code (2: a recipe or usage error), a message that names the problem and the place (the recipe's
file:line or key path, or the data file), no traceback, and every file that existed before exactly
as it was (no new files either: nothing is written when the input is bad).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import tiny_classification_recipe


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- inputs ---------------------------------------------------------------------------------------


def write_yaml(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_image(path: Path, size=(32, 32), value=90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(path)
    return path


def write_mask(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def recipe(**changes) -> dict:
    """The tiny classification recipe with `changes` ({"training.epochs": 3}) applied; None deletes."""
    data = tiny_classification_recipe()
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is None:
            del node[last]
        else:
            node[last] = value
    return data


def image_folder(root: Path, classes=("a", "b"), per_class=2) -> Path:
    for split in ("train", "val"):
        for name in classes:
            for index in range(per_class):
                write_image(root / split / name / f"{index}.png", value=40 + 60 * index)
    return root


def image_folder_recipe(root: Path, **changes) -> dict:
    return recipe(**{"data": {"format": "image_folder", "train": {"root": str(root)}, "val": {"root": str(root)}},
                     "training.batch_size": 2, **changes})


def coco(tmp: Path, *, annotations=None, images=None, size=(32, 32)) -> dict:
    images = images or [{"id": 1, "file_name": "1.png", "width": 32, "height": 32},
                        {"id": 2, "file_name": "2.png", "width": 32, "height": 32}]
    for image in images:
        write_image(tmp / "coco" / image["file_name"], size=size)
    annotations = annotations if annotations is not None else [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10], "iscrowd": 0}]
    file = tmp / "coco" / "instances.json"
    file.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "disc"}]}))
    options = {"images_dir": str(tmp / "coco"), "annotations": str(file)}
    return {"format": "coco", "train": options, "val": options}


def detection_recipe(data: dict) -> dict:
    return {
        "task": "detection", "data": data,
        "augmentation": {"train": [{"name": "normalize"}], "val": [{"name": "normalize"}]},
        "model": {"architecture": {"backbone": {"name": "cspdarknet_nano"}, "neck": {"name": "pafpn"}},
                  "losses": [{"criterion": "yolox_loss"}]},
        "training": {"epochs": 1, "batch_size": 2},
        "logging": {"progress": "none", "plots": False}, "environment": {"num_workers": 0},
    }


def yolo(tmp: Path, train_labels: str) -> dict:
    for split, text in (("train", train_labels), ("val", "0 0.5 0.5 0.2 0.2\n")):
        write_image(tmp / "yolo" / "images" / split / "1.png")
        (tmp / "yolo" / "labels" / split).mkdir(parents=True, exist_ok=True)
        (tmp / "yolo" / "labels" / split / "1.txt").write_text(text)
    options = {"root": str(tmp / "yolo"), "class_names": ["box", "disc"]}
    return {"format": "yolo", "train": options, "val": options}


def mask_folder_recipe(tmp: Path, mask: np.ndarray) -> dict:
    for split in ("train", "val"):
        for stem in ("1", "2"):
            write_image(tmp / "seg" / "images" / split / f"{stem}.png")
            write_mask(tmp / "seg" / "masks" / split / f"{stem}.png", mask)
    options = {"root": str(tmp / "seg"), "class_names": ["background", "object"]}
    return {
        "task": "segmentation", "data": {"format": "mask_folder", "train": options, "val": options},
        "augmentation": {"train": [{"name": "normalize"}], "val": [{"name": "normalize"}]},
        "model": {"architecture": {"backbone": {"name": "resnet18"}}, "losses": [{"criterion": "cross_entropy"}]},
        "training": {"epochs": 1, "batch_size": 2},
        "logging": {"progress": "none", "plots": False}, "environment": {"num_workers": 0},
    }


def fake_run(tmp: Path, data: dict, name="run") -> Path:
    """A run directory as `trainer train` leaves it (recipe.yaml, checkpoints/last.pt), without training."""
    run = tmp / "runs" / name
    write_yaml(run / "recipe.yaml", data)
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"epoch": 1, "model": {}}, run / "checkpoints" / "last.pt")
    return run


def other_model_checkpoint(path: Path) -> Path:
    from trainer.components import load_builtin_components
    from trainer.models.build import build_model

    load_builtin_components()
    model = build_model(task="classification", architecture={"backbone": {"name": "mobilenet_v3_small"}},
                        criteria=["cross_entropy"], num_classes=4)
    torch.save({"model": model.state_dict(), "ema": None, "epoch": 1}, path)
    return path


# ---- cases ----------------------------------------------------------------------------------------


@dataclass
class Case:
    """`setup(tmp)` writes the inputs and returns the command line; `{tmp}` in a message is tmp_path."""

    id: str
    setup: Callable[[Path], list]
    messages: tuple[str, ...]
    code: int = 2
    marks: list = field(default_factory=list)
    writes_run: bool = False  # a failure during the run (exit 1) leaves its run directory under runs/


def check_recipe(data, name="recipe.yaml", command="check") -> Callable[[Path], list]:
    def setup(tmp: Path) -> list:
        return [command, write_yaml(tmp / name, data(tmp) if callable(data) else data)]

    return setup


def check_text(text: str, command="check") -> Callable[[Path], list]:
    def setup(tmp: Path) -> list:
        (tmp / "recipe.yaml").write_text(text)
        return [command, tmp / "recipe.yaml"]

    return setup


def base_cycle(tmp: Path) -> list:
    write_yaml(tmp / "a.yaml", {"base": "b.yaml", **recipe()})
    write_yaml(tmp / "b.yaml", {"base": "a.yaml", "task": "classification"})
    return ["show", tmp / "a.yaml"]


def corrupt_image(truncate: bool, workers: int = 0) -> Callable[[Path], list]:
    def setup(tmp: Path) -> list:
        root = image_folder(tmp / "images")
        bad = root / "train" / "b" / "1.png"
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2] if truncate else b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        return ["check", write_yaml(tmp / "recipe.yaml", image_folder_recipe(
            root, **{"environment.num_workers": workers, "training.batch_size": 4}))]

    return setup


def corrupt_image_met_in_training(tmp: Path) -> list:
    root = image_folder(tmp / "images", per_class=4)
    bad = root / "train" / "b" / "3.png"  # its header reads (the data set builds), its pixels do not
    bad.write_bytes(bad.read_bytes()[:60])
    data = image_folder_recipe(root, **{"training.epochs": 1, "training.batch_size": 2})
    return ["train", write_yaml(tmp / "recipe.yaml", data)]


def different_classes(tmp: Path) -> list:
    root = image_folder(tmp / "images")
    (root / "val" / "b").rename(root / "val" / "c")
    return ["check", write_yaml(tmp / "recipe.yaml", image_folder_recipe(root))]


def empty_image_folder(tmp: Path) -> list:
    for split in ("train", "val"):
        (tmp / "images" / split / "a").mkdir(parents=True)
        (tmp / "images" / split / "a" / "notes.txt").write_text("no images here")
    return ["check", write_yaml(tmp / "recipe.yaml", image_folder_recipe(tmp / "images"))]


def eval_other_model(tmp: Path) -> list:
    run = fake_run(tmp, recipe())
    return ["eval", run, "--checkpoint", other_model_checkpoint(tmp / "other.pt")]


def fine_tune_from_another_model(tmp: Path) -> list:
    other = other_model_checkpoint(tmp / "other.pt")
    return ["train", write_yaml(tmp / "recipe.yaml", recipe(**{"model.checkpoint": str(other)}))]


def eval_corrupt_checkpoint(tmp: Path) -> list:
    run = fake_run(tmp, recipe())
    (run / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    return ["eval", run]


def eval_not_a_run(tmp: Path) -> list:
    (tmp / "somewhere").mkdir()
    (tmp / "somewhere" / "notes.txt").write_text("hello")
    return ["eval", tmp / "somewhere"]


def resume_other_recipe(tmp: Path) -> list:
    run = fake_run(tmp, recipe())
    other = write_yaml(tmp / "other.yaml", recipe(**{"model.architecture.backbone.name": "mobilenet_v3_small"}))
    return ["train", other, "--resume", run]


def resume_not_a_run(tmp: Path) -> list:
    (tmp / "runs" / "empty").mkdir(parents=True)
    return ["train", "--resume", tmp / "runs" / "empty"]


def plugin(text: str, name: str) -> Callable[[Path], list]:
    """A recipe beside a plugin module `name`.py holding `text`, imported by `imports: [name]`."""
    def setup(tmp: Path) -> list:
        (tmp / "recipes").mkdir()
        (tmp / "recipes" / f"{name}.py").write_text(text)
        return ["check", write_yaml(tmp / "recipes" / "recipe.yaml", recipe(imports=[name]))]

    return setup


def train_with_options(*options: str) -> Callable[[Path], list]:
    def setup(tmp: Path) -> list:
        arguments = [str(option).format(tmp=tmp) for option in options]
        return ["train", write_yaml(tmp / "recipe.yaml", recipe()), *arguments]

    return setup


def output_dir_is_a_file(tmp: Path) -> list:
    (tmp / "runs").write_text("not a folder\n")
    return ["train", write_yaml(tmp / "recipe.yaml", recipe()), "--output-dir", tmp / "runs"]


def schema_existing_out(tmp: Path) -> list:
    (tmp / "recipe.schema.json").write_text("{}\n")
    return ["schema", "--out", tmp / "recipe.schema.json"]


def new_existing_out(tmp: Path) -> list:
    (tmp / "mine.yaml").write_text("# my recipe, keep it\n")
    return ["new", "--task", "classification", "--out", tmp / "mine.yaml"]


CASES = [
    # recipe structure and types
    Case("unknown-section", check_recipe(recipe(trainng={"epochs": 2})),
         ("recipe.yaml:", "trainng", "did you mean 'training'")),
    Case("key-typo", check_recipe(recipe(**{"training.epoch": 3})), ("recipe.yaml:", "training.epoch", "'epochs'")),
    Case("wrong-type", check_recipe(recipe(**{"training.epochs": "ten"})), ("recipe.yaml:", "training.epochs", "ten")),
    Case("negative-batch-size", check_recipe(recipe(**{"training.batch_size": -4})),
         ("recipe.yaml:", "training.batch_size", "must be", "-4")),
    Case("zero-epochs", check_recipe(recipe(**{"training.epochs": 0})), ("training.epochs", "must be", "got 0")),
    Case("negative-image-size", check_recipe(recipe(**{"data.train.image_size": -32})),
         ("data.train", "image_size", "-32")),
    Case("negative-grad-clip", check_recipe(recipe(**{"training.grad_clip": -1.0})),
         ("training.grad_clip", "must be > 0", "-1")),
    Case("ema-decay-above-one", check_recipe(recipe(**{"training.ema": {"enabled": True, "decay": 1.5}})),
         ("training.ema.decay", "must be in (0, 1)", "1.5")),
    Case("unknown-task", check_recipe(recipe(task="detektion")), ("task", "did you mean 'detection'")),
    Case("bad-amp-mode", check_recipe(recipe(**{"training.amp": "fp8"})), ("training.amp", "fp8", "bf16")),
    Case("invalid-yaml", check_text("task: classification\ntraining: {epochs: 2\nmodel: {}\n"),
         ("invalid YAML", "recipe.yaml:")),
    Case("not-a-mapping", check_text("- task\n- classification\n"), ("recipe.yaml", "mapping")),
    Case("key-written-twice", check_text(yaml.safe_dump(recipe(), sort_keys=False) + "task: detection\n"),
         ("recipe.yaml:", "task", "written twice")),
    Case("missing-recipe-file", lambda tmp: ["check", tmp / "nowhere.yaml"], ("recipe file not found", "nowhere.yaml")),
    Case("base-cycle", base_cycle, ("cycle", "a.yaml", "b.yaml")),
    Case("missing-base", check_recipe({"base": "parent.yaml", **recipe()}), ("base recipe not found", "parent.yaml")),
    Case("override-index-out-of-range", lambda tmp: ["check", write_yaml(tmp / "r.yaml", recipe()),
                                                     "model.losses.3.weight=2"],
         ("model.losses[3]", "no list item 3", "command-line override")),
    Case("missing-import", check_recipe(recipe(imports=["no_such_plugin_module"])),
         ("imports[0]", "cannot import 'no_such_plugin_module'")),
    # names of components
    Case("unknown-criterion", check_recipe(recipe(**{"model.losses": [{"criterion": "focal"}]})),
         ("model.losses[0].criterion", "did you mean 'focal_loss'")),
    Case("unknown-backbone", check_recipe(recipe(**{"model.architecture.backbone.name": "resnet19"})),
         ("model.architecture.backbone", "resnet19", "resnet18")),
    Case("unknown-transform",
         check_recipe(recipe(**{"augmentation.train": [{"name": "hfilp"}, {"name": "normalize"}]})),
         ("augmentation.train[0]", "hfilp", "'hflip'")),
    Case("unknown-optimizer", check_recipe(recipe(**{"training.optimizer": {"name": "adamm"}})),
         ("training.optimizer", "adamm", "adam")),
    Case("unknown-loss-option", check_recipe(recipe(**{"model.losses": [{"criterion": "cross_entropy",
                                                                         "label_smothing": 0.1}]})),
         ("model.losses[0]", "label_smothing", "label_smoothing")),
    Case("incompatible-head-and-loss",
         check_recipe(recipe(**{"model.architecture.head": {"name": "anchor_decoupled"}})),
         ("model.architecture.head", "anchor_decoupled", "fc")),
    Case("loss-of-another-task", check_recipe(recipe(**{"model.losses": [{"criterion": "yolox_loss"}]})),
         ("yolox_loss", "classification")),
    Case("no-losses", check_recipe(recipe(**{"model.losses": []})), ("model.losses", "at least one loss")),
    Case("metric-of-another-task", check_recipe(recipe(**{"training.best_metric": "mAP50"})),
         ("training.best_metric", "mAP50", "top1")),
    Case("data-format-of-another-task", check_recipe(recipe(**{"data.format": "coco"})),
         ("data.format", "coco", "detection")),
    Case("cuda-on-a-cpu-machine", lambda tmp: ["check", write_yaml(tmp / "r.yaml", recipe()), "--device", "cuda"],
         ("cuda", "not available"),
         marks=[pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")]),
    # data
    Case("missing-data-root", check_recipe(lambda tmp: image_folder_recipe(tmp / "no_images")),
         ("data.", "root directory not found", "{tmp}/no_images")),
    Case("empty-data-set", empty_image_folder, ("data.", "no images in", "{tmp}/images")),
    Case("corrupt-image", corrupt_image(truncate=False), ("image", "{tmp}/images/train/b/1.png")),
    Case("truncated-image", corrupt_image(truncate=True), ("image", "{tmp}/images/train/b/1.png")),
    Case("corrupt-image-in-a-loader-worker", corrupt_image(truncate=False, workers=1),
         ("image", "{tmp}/images/train/b/1.png")),
    Case("corrupt-image-met-during-training", corrupt_image_met_in_training,
         ("bad data during training", "image", "{tmp}/images/train/b/3.png"), code=1, writes_run=True),
    Case("train-and-val-classes-differ", different_classes, ("different classes", "'b'", "'c'")),
    Case("coco-label-id-out-of-range", check_recipe(lambda tmp: detection_recipe(coco(tmp, annotations=[
        {"id": 5, "image_id": 1, "category_id": 9, "bbox": [1, 1, 4, 4]}]))),
         ("{tmp}/coco/instances.json", "category_id", "9")),
    Case("coco-missing-annotations", check_recipe(lambda tmp: detection_recipe(
        {"format": "coco", "train": {"images_dir": str(tmp), "annotations": str(tmp / "none.json")},
         "val": {"images_dir": str(tmp), "annotations": str(tmp / "none.json")}})),
         ("annotation file not found", "{tmp}/none.json")),
    Case("coco-image-size-differs", check_recipe(lambda tmp: detection_recipe(coco(tmp, size=(24, 24)))),
         ("{tmp}/coco/1.png", "24x24", "32x32")),
    Case("yolo-class-id-out-of-range", check_recipe(lambda tmp: detection_recipe(yolo(tmp, "0 0.5 0.5 0.2 0.2\n"
                                                                                            "5 0.5 0.5 0.1 0.1\n"))),
         ("labels/train/1.txt:2", "class id 5", "2 classes")),
    Case("yolo-malformed-line", check_recipe(lambda tmp: detection_recipe(yolo(tmp, "0 0.5 0.5 0.2\n"))),
         ("labels/train/1.txt:1", "expected 5 fields")),
    Case("mask-of-the-wrong-size", check_recipe(lambda tmp: mask_folder_recipe(tmp, np.zeros((16, 16)))),
         ("{tmp}/seg/masks/", "16x16", "32x32")),
    Case("mask-class-id-out-of-range", check_recipe(lambda tmp: mask_folder_recipe(tmp, np.full((32, 32), 7))),
         ("{tmp}/seg/masks/", "class id(s) [7]", "0..1")),
    # checkpoints, run directories, outputs
    Case("checkpoint-of-another-model", eval_other_model, ("{tmp}/other.pt", "does not fit this model")),
    Case("fine-tune-from-another-model", fine_tune_from_another_model, ("{tmp}/other.pt", "does not fit this model")),
    Case("corrupt-checkpoint", eval_corrupt_checkpoint, ("cannot read checkpoint", "{tmp}/runs/run/checkpoints")),
    Case("eval-of-a-directory-that-is-no-run", eval_not_a_run, ("{tmp}/somewhere", "not a run directory")),
    Case("resume-with-another-recipe", resume_other_recipe,
         ("--resume", "another recipe", "model.architecture.backbone.name")),
    Case("resume-of-a-directory-that-is-no-run", resume_not_a_run, ("--resume", "{tmp}/runs/empty", "not a run")),
    Case("new-onto-an-existing-file", new_existing_out, ("{tmp}/mine.yaml", "exists")),
    Case("unknown-list-kind", lambda tmp: ["list", "lossess"], ("lossess", "did you mean 'losses'")),
    Case("schema-onto-an-existing-file", schema_existing_out,
         ("--out", "{tmp}/recipe.schema.json", "exists", "--force")),
    # plugins: any exception while importing names imports[i], the module and the plugin's own line
    Case("plugin-that-raises", plugin("import os\nraise RuntimeError('no licence key')\n", "raising_plugin"),
         ("imports[0]", "cannot import 'raising_plugin'", "{tmp}/recipes/raising_plugin.py:2",
          "RuntimeError: no licence key")),
    Case("plugin-with-a-syntax-error", plugin("def f(:\n    pass\n", "syntax_error_plugin"),
         ("imports[0]", "'syntax_error_plugin'", "{tmp}/recipes/syntax_error_plugin.py:1", "SyntaxError")),
    Case("plugin-registering-a-taken-name",
         plugin("from trainer.registry import LOSSES\n\n\n@LOSSES.register('cross_entropy')\nclass Mine:\n"
                "    pass\n", "duplicate_plugin"),
         ("imports[0]", "{tmp}/recipes/duplicate_plugin.py:4", "'cross_entropy' is already registered by "
          "trainer.losses.cross_entropy", "duplicate_plugin.Mine")),
    # command-line options are checked like recipe values, before anything is written
    Case("device-that-does-not-exist", train_with_options("--device", "tpu"),
         ("--device", "must be auto, cpu, cuda, cuda:N or mps, got 'tpu'")),
    Case("mps-device-without-mps", train_with_options("--device", "mps"), ("--device", "MPS", "not available"),
         marks=[pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")]),
    Case("cuda-device-beyond-the-count", train_with_options("--device", f"cuda:{torch.cuda.device_count()}"),
         ("--device", f"cuda:{torch.cuda.device_count()}")),
    Case("empty-run-name", train_with_options("--name", ""), ("--name", "must be a folder name", "not empty")),
    Case("run-name-that-is-a-path", train_with_options("--name", "../elsewhere"),
         ("--name", "must be a folder name", "'../elsewhere'")),
    Case("run-name-in-the-recipe-that-is-a-path", check_recipe(recipe(**{"logging.name": "a/b"})),
         ("recipe.yaml:", "logging.name", "must be a folder name")),
    Case("output-dir-that-is-a-file", output_dir_is_a_file, ("--output-dir", "{tmp}/runs is a file")),
    Case("backbone-option-its-constructor-refuses",
         check_recipe(recipe(**{"model.architecture.backbone": {"name": "resnet18", "out_levels": [2, 9]}})),
         ("model.architecture.backbone", "out_levels", "(2, 9)")),
]


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("*")) if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=case.marks) for case in CASES])
def test_bad_input(case: Case, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = case.setup(tmp_path)
    if arguments[0] == "train" and "--output-dir" not in arguments:
        arguments += ["--output-dir", tmp_path / "runs"]
    before = _snapshot(tmp_path)
    result = cli(*arguments)
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == case.code, result.output
    for message in case.messages:
        assert message.format(tmp=tmp_path) in output, f"{message!r} not in: {result.output}"
    assert "Traceback" not in result.output and 'File "' not in result.output, result.output
    after = _snapshot(tmp_path)
    if case.writes_run:  # its new run directory, nothing else
        after = {path: value for path, value in after.items() if path in before or not path.startswith("runs/")}
    assert after == before, "a file was written or changed"


def test_the_catalogue_is_large():
    assert len({case.id for case in CASES}) == len(CASES) >= 25


def test_boxes_outside_the_image_are_repaired_with_one_warning(tmp_path, cli):
    """Not an error (COCO exports often hold boxes a pixel past the edge): clipped, or dropped when
    nothing is left inside, with one warning naming the file and the counts."""
    data = coco(tmp_path, annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 20, 30, 30]},
                                       {"id": 2, "image_id": 2, "category_id": 2, "bbox": [40, 40, 5, 5]}])
    path = write_yaml(tmp_path / "recipe.yaml", detection_recipe(data))
    before = _snapshot(tmp_path)
    result = cli("check", path)
    output = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert (f"warning: coco: {tmp_path}/coco/instances.json: 1 box(es) reaching outside their image were clipped "
            "to it; 1 box(es) with no area inside the image were dropped") in output
    assert output.count("box(es) reaching outside") == 1 and 'File "' not in output and ".py:" not in output
    assert _snapshot(tmp_path) == before
