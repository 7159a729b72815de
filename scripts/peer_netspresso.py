"""Train NetsPresso Trainer 1.4.1 on a `peer_data` set and write its val predictions (runs in its venv).

Run by `bench_peers.py` with NetsPresso's own interpreter; imports nothing from trainer. Writes the
six YAML files NetsPresso reads into ``--out``, trains (one thread), then predicts the val images
with the trained in-memory model and NetsPresso's own postprocessor and writes
``predictions.json`` (COCO results, detection) or ``top1.json`` (classification).
Equal settings with trainer: no augmentation, the scheduler's warmup as asked (NetsPresso steps it
per epoch), no EMA, the L1 term off, no decay on biases and norms.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

np.trapz = getattr(np, "trapz", None) or np.trapezoid  # its detection metric calls np.trapz (gone in numpy 2.4)
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
RESNET18_STAGES = [{"channels": 64, "num_blocks": 2}] + [
    {"channels": c, "num_blocks": 2, "replace_stride_with_dilation": False, "replace_stride_with_pooling": False}
    for c in (128, 256, 512)
]


def _yamls(args: argparse.Namespace) -> dict[str, dict]:
    names = json.loads(args.class_names)
    size = args.image_size
    transforms = [{"name": "resize", "size": [size, size], "interpolation": "bilinear", "max_size": None,
                   "resize_criteria": None},
                  {"name": "totensor", "pixel_range": 1.0}, {"name": "normalize", "mean": MEAN, "std": STD}]
    if args.task == "detection":
        path = {"root": args.data, "train": {"image": "images/train", "label": "labels/train"},
                "valid": {"image": "images/val", "label": "labels/val"}, "test": {"image": None, "label": None},
                "pattern": {"image": None, "label": None}}
        model = {"task": "detection", "name": "yolox_nano",
                 "checkpoint": {"use_pretrained": False, "load_head": False, "path": None, "optimizer_path": None},
                 "freeze_backbone": False,
                 "architecture": {"full": None,
                                  "backbone": {"name": "cspdarknet", "params": {"depthwise": True, "dep_mul": 0.33,
                                               "wid_mul": 0.25, "act_type": "silu"}, "stage_params": None},
                                  "neck": {"name": "yolopafpn", "params": {"depthwise": True, "dep_mul": 0.33,
                                           "act_type": "silu"}},
                                  "head": {"name": "anchor_free_decoupled_head",
                                           "params": {"depthwise": True, "act_type": "silu"}}},
                 "postprocessor": {"params": {"score_thresh": 0.001, "nms_thresh": 0.65, "class_agnostic": False}},
                 "losses": [{"criterion": "yolox_loss", "weight": None, "l1_activate_epoch": 100000}]}
    else:
        path = {"root": args.data, "train": {"image": "train_flat", "label": "train.csv"},
                "valid": {"image": "val_flat", "label": "val.csv"}, "test": {"image": None, "label": None}}
        model = {"task": "classification", "name": "resnet18",
                 "checkpoint": {"use_pretrained": False, "load_head": False, "path": None, "optimizer_path": None},
                 "freeze_backbone": False,
                 "architecture": {"full": None,
                                  "backbone": {"name": "resnet", "params": {"block_type": "basicblock",
                                               "norm_type": "batch_norm", "return_stage_idx": None,
                                               "split_stem_conv": False, "first_stage_shortcut_conv": False},
                                               "stage_params": RESNET18_STAGES},
                                  "head": {"name": "fc", "params": {"num_layers": 1, "intermediate_channels": None,
                                           "act_type": None, "dropout_prob": 0.0}}},
                 "postprocessor": None,
                 "losses": [{"criterion": "cross_entropy", "label_smoothing": 0.0, "weight": None}]}
    data = {"name": Path(args.data).name, "task": args.task, "format": "local", "path": path, "id_mapping": names}
    training = {"epochs": args.epochs, "mixed_precision": False, "max_norm": None, "ema": None,
                "optimizer": {"name": "adamw", "lr": args.lr, "betas": [0.9, 0.999], "weight_decay": args.weight_decay,
                              "no_bias_decay": True, "no_norm_weight_decay": True, "overwrite": None},
                "scheduler": {"name": "cosine_no_sgdr", "warmup_epochs": args.warmup_epochs, "warmup_bias_lr": 0.0,
                              "min_lr": 0.0, "end_epoch": args.epochs}}
    logging = {"project_id": None, "output_dir": str(Path(args.out) / "outputs"), "tensorboard": False,
               "mlflow": False, "stdout": True, "num_save_samples": 0,
               "model_save_options": {"save_optimizer_state": False, "save_best_only": True,
                                      "best_model_criterion": "loss", "sample_input_size": [size, size],
                                      "onnx_export_opset": 13, "validation_epoch": args.epochs,
                                      "save_checkpoint_epoch": args.epochs},
               "metrics": {"classwise_analysis": False, "metric_names": None}}
    environment = {"seed": args.seed, "num_workers": 1, "gpus": 0, "batch_size": args.batch_size,
                   "cache_data": False}
    return {"data": {"data": data}, "augmentation": {"augmentation": {"train": transforms, "inference": transforms}},
            "model": {"model": model}, "training": {"training": training}, "logging": {"logging": logging},
            "environment": {"environment": environment}}


def _val_images(args: argparse.Namespace) -> list[tuple[int, Path]]:
    if args.task == "detection":
        coco = json.loads((Path(args.data) / "val_coco.json").read_text())
        return [(im["id"], Path(args.data) / "images" / "val" / im["file_name"]) for im in coco["images"]]
    rows = (Path(args.data) / "val.csv").read_text().split()[1:]
    return [(int(r.split(",")[1]), Path(args.data) / "val_flat" / r.split(",")[0]) for r in rows]


@torch.no_grad()
def _predict(model: torch.nn.Module, conf, args: argparse.Namespace) -> dict:
    from netspresso_trainer.postprocessors import build_postprocessor
    from PIL import Image

    model.eval()
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    post = build_postprocessor(args.task, conf.model) if args.task == "detection" else None
    results, correct = [], 0
    for key, path in _val_images(args):
        image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
        x = ((image.permute(2, 0, 1) - mean) / std)[None]
        out = model(x)
        if post is None:
            correct += int(out["pred"].argmax(1).item() == key)
            continue
        boxes, scores, labels = post(out, original_shape=x[0].shape)[0]
        for i in np.argsort(-scores)[:100]:
            x0, y0, x1, y1 = (float(v) for v in boxes[i])
            results.append({"image_id": key, "category_id": int(labels[i]), "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": float(scores[i])})
    return {"predictions": results} if post is not None else {"top1": correct / len(_val_images(args))}


def main() -> None:
    parser = argparse.ArgumentParser()
    for name, kind in (("data", str), ("out", str), ("task", str), ("class-names", str), ("epochs", int),
                       ("batch-size", int), ("lr", float), ("weight-decay", float), ("warmup-epochs", int),
                       ("image-size", int), ("seed", int)):
        parser.add_argument(f"--{name}", type=kind, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in _yamls(args).items():
        OmegaConf.save(OmegaConf.create(content), out / f"{name}.yaml")

    import netspresso_trainer.trainer_common as common
    from netspresso_trainer.utils.engine_utils import set_arguments, validate_train_config

    built: list[torch.nn.Module] = []
    original_build = common.build_model
    common.build_model = lambda *a, **k: built.append(original_build(*a, **k)) or built[-1]
    conf = set_arguments(**{name: str(out / f"{name}.yaml") for name in _yamls(args)})
    top1_per_epoch = _record_top1_per_epoch(conf, args) if args.task == "classification" else []
    summary = validate_train_config(conf)
    common.train_common(conf, task=summary.task, model_name=summary.model_name,
                        is_graphmodule_training=summary.is_graphmodule_training, logging_dir=summary.logging_dir)
    result = {**_predict(built[0], conf, args), **({"top1_per_epoch": top1_per_epoch} if top1_per_epoch else {})}
    (out / "result.json").write_text(json.dumps(result))


def _record_top1_per_epoch(conf, args: argparse.Namespace) -> list[float]:
    """After each of NetsPresso's training epochs, the val top-1 of its model (the same code as the final one)."""
    from netspresso_trainer.pipelines.train import TrainingPipeline

    recorded: list[float] = []
    original = TrainingPipeline.train_one_epoch

    def train_one_epoch(pipeline, epoch):
        original(pipeline, epoch)
        model = pipeline.model.module if hasattr(pipeline.model, "module") else pipeline.model
        recorded.append(_predict(model, conf, args)["top1"])
        model.train()

    TrainingPipeline.train_one_epoch = train_one_epoch
    return recorded


if __name__ == "__main__":
    main()
