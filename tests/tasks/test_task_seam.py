"""Every task through the whole `Task` seam (parametrized over `task_names()`, so a new task is
tested without a new test): batches from real samples, a real model's eval outputs, the evaluator,
the validation panels and `trainer predict`'s writer."""

from __future__ import annotations

import json

import pytest
import torch

from trainer.components import load_builtin_components
from trainer.data.shapes import ShapesDataset
from trainer.engine.val_images import panel_indices
from trainer.models.build import build_model
from trainer.recipe.schema import PostprocessConfig
from trainer.tasks import get_task, task_class, task_names
from trainer.tasks.base import Task
from trainer.tasks.predictions import PredictedImage

MODELS = {
    "classification": ({"backbone": {"name": "resnet18"}}, ["cross_entropy"]),
    "detection": ({"backbone": {"name": "resnet18"}, "neck": {"name": "fpn"}}, ["retinanet_loss"]),
    "segmentation": ({"backbone": {"name": "resnet18"}, "head": {"name": "seg_head", "hidden_channels": 8}},
                     ["cross_entropy"]),
}


@pytest.mark.parametrize("name", task_names())
def test_each_task_serves_the_whole_seam(name, tmp_path):
    load_builtin_components()
    task = get_task(name)
    assert isinstance(task, Task) and task_class(name).name == name
    assert task.default_best_metric in task.metric_names
    dataset = ShapesDataset(task=name, split="val", num_images=4, image_size=32)
    batch = task.collate([dataset[i] for i in range(4)])
    assert set(task.batch_fields) <= set(batch)
    architecture, criteria = MODELS[name]
    model = build_model(task=name, architecture=architecture, criteria=criteria,
                        num_classes=len(dataset.class_names)).eval()
    with torch.no_grad():
        outputs = {k: v.float() for k, v in model(batch["images"].float() / 255).items()}
    post = PostprocessConfig(score_threshold=0.0)
    evaluator = task.build_evaluator(class_names=dataset.class_names, device=torch.device("cpu"), postprocess=post)
    evaluator.update(outputs=outputs, batch=batch)
    assert set(evaluator.compute()) == set(task.metric_names)
    task.report(evaluator)  # a table or None, never an error
    panels = task.draw_panels(batch=batch, outputs=outputs, class_names=dataset.class_names, postprocess=post)
    assert len(panels.items) >= 4 and all(image.dtype == torch.uint8 for image, _ in panels.items)
    writer = task.prediction_writer(out_dir=tmp_path, class_names=dataset.class_names, postprocess=post, top_k=2,
                                    draw_threshold=0.3)
    items = [PredictedImage(index=i, path=tmp_path / f"{i}.png", name=str(i), tensor=batch["images"][i],
                            region=(0.0, 0.0, 32.0, 32.0), image=batch["images"][i]) for i in range(4)]
    assert len(writer.add(items, outputs)) == 4
    writer.finish()
    assert isinstance(json.loads((tmp_path / "predictions.json").read_text()), list)
    assert all((tmp_path / "images" / f"{i}.png").is_file() for i in range(4))


def test_validation_panels_sample_across_the_set_with_a_fixed_seed():
    chosen = panel_indices(100, 8)
    assert chosen == panel_indices(100, 8) and chosen == sorted(set(chosen)) and len(chosen) == 8
    assert chosen != list(range(8))  # not the first images (one class in a sorted image folder)
    assert len({index // 25 for index in chosen}) > 1  # 4 classes of 25 sorted images: more than one shown
    assert panel_indices(3, 8) == [0, 1, 2]
