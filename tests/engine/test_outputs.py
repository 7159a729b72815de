"""What a finished run leaves to look at: plots, validation images, TensorBoard events."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from tests.conftest import tiny_classification_recipe
from trainer.engine import plots


def _is_png(path, *, min_size=(200, 150)) -> bool:
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]


def test_finished_run_holds_plots_val_images_and_tensorboard(tmp_path, write_recipe, cli):
    recipe = tiny_classification_recipe()
    recipe["data"]["train"]["num_images"] = 16
    recipe["logging"].update({"plots": True, "tensorboard": True, "val_images_every": 1, "log_every": 1})
    path = write_recipe(recipe)
    result = cli("train", path, "--output-dir", tmp_path / "runs", "--name", "r")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "r"
    for name in ("curves.png", "confusion_matrix.png", "val_epoch_1.png", "val_epoch_2.png"):
        assert _is_png(run / "plots" / name), name
    assert not (run / "plots" / "pr_curve.png").exists()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/total", "loss/cross_entropy/ce", "lr", "val/top1", "val/top5", "epoch/train/total"} <= scalars
    assert [event.step for event in events.Scalars("val/top1")] == [1, 2]
    assert "val_images" in events.Tags()["images"]


def test_plots_off_and_no_tensorboard_by_default(tmp_path, write_recipe, cli):
    path = write_recipe(tiny_classification_recipe())  # logging.plots: false, tensorboard default false
    result = cli("train", path, "training.epochs=1", "training.max_steps_per_epoch=1", "--output-dir",
                 tmp_path / "runs", "--name", "r")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "runs" / "r" / "plots").exists()
    assert not (tmp_path / "runs" / "r" / "tensorboard").exists()


def test_curves_from_metrics_csv(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,lr,train/yolox/iou,train/total,val/mAP50_95,val/mAP50,seconds\n"
                   "1,0.01,2.0,5.0,,,1.0\n"  # no validation in epoch 1: empty cells
                   "2,0.005,1.5,4.0,0.2,0.4,1.0\n")
    assert plots.plot_curves(csv, tmp_path / "curves.png") == tmp_path / "curves.png"
    assert _is_png(tmp_path / "curves.png")
    assert plots.plot_curves(tmp_path / "missing.csv", tmp_path / "none.png") is None


def test_pr_curve_from_coco_evaluator(tmp_path):
    from trainer.tasks.detection import DetectionEvaluator

    evaluator = DetectionEvaluator(class_names=["a", "b"], device=torch.device("cpu"),
                                   postprocess={"score_threshold": 0.0, "nms_iou": 0.5, "max_detections": 10,
                                                "pre_nms_top_k": 100})
    coco = evaluator.coco
    coco.add_ground_truth(0, torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]), torch.tensor([0, 1]))
    coco.add_detections(0, torch.tensor([[0.0, 0.0, 10.0, 10.0], [21.0, 21.0, 30.0, 30.0], [50.0, 50.0, 60.0, 60.0]]),
                        torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 1]))
    evaluator.compute()
    curve = evaluator.pr_curve()
    assert curve["precision_per_class"].shape == (2, 101)
    plots.plot_pr_curve(curve, ["a", "b"], tmp_path / "pr.png")
    assert _is_png(tmp_path / "pr.png")


def test_confusion_matrix_of_segmentation_evaluator(tmp_path):
    from trainer.tasks.segmentation import SegmentationEvaluator

    evaluator = SegmentationEvaluator(class_names=["background", "circle", "square"], device=torch.device("cpu"))
    labels = torch.tensor([[[0, 1], [2, 255]]])
    logits = torch.nn.functional.one_hot(torch.tensor([[[0, 1], [1, 0]]]), 3).permute(0, 3, 1, 2).float()
    evaluator.update(outputs={"logits": logits}, batch={"labels": labels})
    matrix = plots.confusion_matrix_of(evaluator)
    assert np.array_equal(matrix, [[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    plots.plot_confusion_matrix(matrix, evaluator.class_names, tmp_path / "cm.png")
    assert _is_png(tmp_path / "cm.png")
    assert plots.confusion_matrix_of(object()) is None
