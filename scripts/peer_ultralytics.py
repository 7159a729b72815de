"""Train Ultralytics (yolo11n / yolo11n-cls from yaml, nothing downloaded) on a `peer_data` set (runs in its venv).

Same settings as the others: AdamW at the given lr and weight decay, cosine, the given warmup, no
augmentation, nbs = batch (no gradient accumulation nor decay rescaling), one loader worker, AMP
and plots off. Its EMA is always on. Writes ``result.json``: COCO results on the val images
(score >= 0.001, up to 100 per image) or the val top-1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

NO_AUGMENTATION = dict(mosaic=0.0, mixup=0.0, fliplr=0.0, flipud=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0,
                       translate=0.0, scale=0.0, degrees=0.0, shear=0.0, perspective=0.0, erasing=0.0,
                       auto_augment=None, close_mosaic=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name, kind in (("data", str), ("out", str), ("task", str), ("epochs", int), ("batch-size", int),
                       ("lr", float), ("weight-decay", float), ("warmup-epochs", float), ("image-size", int),
                       ("seed", int)):
        parser.add_argument(f"--{name}", type=kind, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from ultralytics import YOLO

    detection = args.task == "detection"
    model = YOLO("yolo11n.yaml" if detection else "yolo11n-cls.yaml")

    def one_worker(trainer) -> None:  # it forces workers=0 on the CPU
        trainer.args.workers = 1

    model.add_callback("on_pretrain_routine_start", one_worker)
    data = str(Path(args.data) / "data.yaml") if detection else args.data
    model.train(data=data, epochs=args.epochs, batch=args.batch_size, imgsz=args.image_size, optimizer="AdamW",
                lr0=args.lr, lrf=0.0001, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
                cos_lr=True, nbs=args.batch_size, amp=False, plots=False, device="cpu", workers=1, seed=args.seed,
                project=str(Path(args.out)), name="run", exist_ok=True, val=False, verbose=False,
                **NO_AUGMENTATION)
    (Path(args.out) / "result.json").write_text(json.dumps(_predict(model, args)))


def _predict(model, args: argparse.Namespace) -> dict:
    root = Path(args.data)
    if args.task != "detection":
        names = {v: k for k, v in model.names.items()}
        total = correct = 0
        for folder in sorted((root / "val").iterdir()):
            for path in sorted(folder.iterdir()):
                top = model.predict(str(path), imgsz=args.image_size, verbose=False, device="cpu")[0].probs.top1
                correct += int(top == names.get(folder.name, -1))
                total += 1
        return {"top1": correct / max(total, 1)}
    coco = json.loads((root / "val_coco.json").read_text())
    results = []
    for image in coco["images"]:
        det = model.predict(str(root / "images" / "val" / image["file_name"]), imgsz=args.image_size, conf=0.001,
                            iou=0.65, max_det=100, verbose=False, device="cpu")[0].boxes
        for (x0, y0, x1, y1), score, label in zip(det.xyxy.tolist(), det.conf.tolist(), det.cls.tolist()):
            results.append({"image_id": image["id"], "category_id": int(label), "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": float(score)})
    return {"predictions": results}


if __name__ == "__main__":
    main()
