"""Batched trainer losses vs per-image / official formulations: values checked equal, then timed.

forward + backward at batch 16, realistic sizes:
- yolox_loss: 416 x 416 input (3549 anchor points, strides 8/16/32), 80 classes, 10-30 gts/image,
  against ``tests/losses/reference_detection_losses.yolox_reference_loss`` (official get_losses,
  one image at a time, Python loop over gts for the dynamic-k selection).
- retinanet_loss: 320 x 320 input, 9 anchors per location on P3-P7 (19206 anchors), 80 classes,
  10-30 gts/image, against torchvision's own ``RetinaNet.compute_loss`` (per-image loop).
- pidnet_loss: 256 x 256 labels, outputs at 1/8, 19 classes, ~10 % ignored, against
  ``tests/losses/reference_pidnet_loss.pidnet_reference_loss`` (official: per-pixel CE +
  sort-based OHEM over the batch, edge target made image by image as the official dataset does).

Rounds alternate trainer / reference; the ratio is the median of per-round reference time /
trainer time (speed-up). Usage: python scripts/bench_losses.py [--rounds 5] [--batch 16]
"""

from __future__ import annotations

import argparse
import functools
import time

import bench_common as bc
import torch

from tests.losses.reference_detection_losses import retinanet_reference_loss, yolox_reference_loss
from tests.losses.reference_pidnet_loss import pidnet_reference_loss
from trainer.losses.pidnet import pidnet_loss
from trainer.losses.retinanet import retinanet_loss
from trainer.losses.yolox import yolox_loss

TARGETS = {"yolox_loss": 3.0, "retinanet_loss": 1.0, "pidnet_loss": 1.0}


def gt_batch(generator, *, batch: int, size: int, num_classes: int, low: int = 10, high: int = 30):
    counts = torch.randint(low, high + 1, (batch,), generator=generator).tolist()
    boxes = torch.zeros(batch, max(counts), 4)
    labels = torch.full((batch, max(counts)), -1, dtype=torch.int64)
    for b, n in enumerate(counts):
        wh = torch.rand(n, 2, generator=generator) * (size * 0.4) + 12
        corner = torch.rand(n, 2, generator=generator) * (size - wh)
        boxes[b, :n] = torch.cat([corner, corner + wh], dim=1)
        labels[b, :n] = torch.randint(0, num_classes, (n,), generator=generator)
    return boxes, labels


def yolox_inputs(batch: int, size: int = 416, num_classes: int = 80) -> dict:
    g = torch.Generator().manual_seed(0)
    grids, strides = [], []
    for stride in (8, 16, 32):
        ys, xs = torch.meshgrid(torch.arange(size // stride), torch.arange(size // stride), indexing="ij")
        grids.append(torch.stack([xs, ys], dim=-1).reshape(-1, 2).float())
        strides.append(torch.full((grids[-1].shape[0],), float(stride)))
    grid_xy, strides = torch.cat(grids), torch.cat(strides)
    anchors = grid_xy.shape[0]
    boxes, labels = gt_batch(g, batch=batch, size=size, num_classes=num_classes)
    sizes = torch.log(48.0 / strides)[None, :, None] + 0.6 * torch.randn(batch, anchors, 2, generator=g)
    return {
        "box_preds": torch.cat([torch.rand(batch, anchors, 2, generator=g), sizes], dim=-1),
        "obj_logits": torch.randn(batch, anchors, generator=g) - 2.0,
        "cls_logits": torch.randn(batch, anchors, num_classes, generator=g) - 2.0,
        "grid_xy": grid_xy, "strides": strides, "gt_boxes": boxes, "gt_labels": labels, "use_l1": True,
    }


def retinanet_inputs(batch: int, size: int = 320, num_classes: int = 80) -> dict:
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    g = torch.Generator().manual_seed(1)
    sizes = tuple((x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in (32, 64, 128, 256, 512))
    generator = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
    feats = [torch.zeros(1, 1, -(-size // s), -(-size // s)) for s in (8, 16, 32, 64, 128)]
    anchors = generator(ImageList(torch.zeros(1, 3, size, size), [(size, size)]), feats)[0]
    boxes, labels = gt_batch(g, batch=batch, size=size, num_classes=num_classes)
    count = anchors.shape[0]
    return {
        "cls_logits": torch.randn(batch, count, num_classes, generator=g) - 3.0,
        "box_regression": 0.3 * torch.randn(batch, count, 4, generator=g),
        "anchors": anchors, "gt_boxes": boxes, "gt_labels": labels,
    }


def pidnet_inputs(batch: int, size: int = 256, num_classes: int = 19) -> dict:
    g = torch.Generator().manual_seed(2)
    low = size // 8
    # blocky label maps (regions of 32 px), ~10 % ignore
    coarse = torch.randint(0, num_classes, (batch, 1, size // 32, size // 32), generator=g).float()
    labels = torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")[:, 0].long()
    labels[torch.rand(batch, size, size, generator=g) < 0.1] = 255
    return {
        "logits_p": torch.randn(batch, num_classes, low, low, generator=g),
        "logits": torch.randn(batch, num_classes, low, low, generator=g) * 2,
        "boundary_logits": torch.randn(batch, 1, low, low, generator=g) * 2,
        "labels": labels,
    }


GRAD_KEYS = {
    "yolox_loss": ("box_preds", "obj_logits", "cls_logits"),
    "retinanet_loss": ("cls_logits", "box_regression"),
    "pidnet_loss": ("logits_p", "logits", "boundary_logits"),
}


def pidnet_trainer(**kw):
    return pidnet_loss(kw["logits_p"], kw["logits"], kw["boundary_logits"], kw["labels"])


def pidnet_reference(**kw):
    return pidnet_reference_loss(kw["logits_p"], kw["logits"], kw["boundary_logits"], kw["labels"])


def forward_backward(function, inputs: dict, grad_keys) -> tuple[dict, dict]:
    leaves = {k: (v.detach().clone().requires_grad_() if k in grad_keys else v) for k, v in inputs.items()}
    parts = function(**leaves)
    sum(parts.values()).backward()
    return {k: v.detach() for k, v in parts.items()}, {k: leaves[k].grad for k in grad_keys}


def check_equal(name: str, trainer_fn, reference_fn, inputs: dict) -> str:
    keys = GRAD_KEYS[name]
    parts, grads = forward_backward(trainer_fn, inputs, keys)
    ref_parts, ref_grads = forward_backward(reference_fn, inputs, keys)
    assert parts.keys() == ref_parts.keys(), (parts.keys(), ref_parts.keys())
    for key in parts:
        torch.testing.assert_close(parts[key], ref_parts[key].to(parts[key].dtype), rtol=1e-4, atol=1e-5)
    for key in keys:
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=1e-3, atol=1e-6)
    return ", ".join(f"{k}={v.item():.4f}" for k, v in parts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3 if bc.quick() else 5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--losses", nargs="*", default=None, help="subset of yolox_loss retinanet_loss pidnet_loss")
    bc.add_threads_option(parser)
    args = parser.parse_args()
    bc.apply_threads(args.threads)
    print(f"bench_losses: {bc.machine()}; batch {args.batch}; forward + backward")
    make = {"yolox_loss": yolox_inputs, "retinanet_loss": retinanet_inputs, "pidnet_loss": pidnet_inputs}
    selected = args.losses or list(make)
    cases = [
        ("yolox_loss", "416px, 3549 anchors, 80 cls", yolox_loss, yolox_reference_loss, args.batch,
         "official per-image"),
        ("retinanet_loss", "320px, 19206 anchors, 80 cls", retinanet_loss, retinanet_reference_loss,
         args.batch, "torchvision per-image"),
        ("pidnet_loss", "256px, 19 cls, OHEM", pidnet_trainer, pidnet_reference, args.batch,
         "official (sort OHEM)"),
    ]
    rows = []
    for name, shape, trainer_fn, reference_fn, batch, reference_name in cases:
        if name not in selected:
            continue
        start = time.perf_counter()
        inputs = make[name](batch)
        values = check_equal(name, trainer_fn, reference_fn, inputs)
        print(f"  {name}: values equal to the reference ({values})")
        keys = GRAD_KEYS[name]
        t_trainer, t_ref = bc.alternate(
            functools.partial(forward_backward, trainer_fn, inputs, keys),
            functools.partial(forward_backward, reference_fn, inputs, keys),
            rounds=args.rounds,
        )
        speedup = bc.median_ratio(t_ref, t_trainer)
        cpu_speedup = bc.median_ratio(t_ref, t_trainer, which=1)
        target = TARGETS[name]
        rows.append([
            name, shape, reference_name, 1000 * bc.median_of(t_trainer), 1000 * bc.median_of(t_ref),
            speedup, cpu_speedup, f">= {target:g}x " + (
                "ok" if speedup >= target else "ok by CPU time" if cpu_speedup >= target else "MISSED"
            ),
        ])
        print(f"  {name}: {time.perf_counter() - start:.0f} s")
    bc.table(rows, ["loss", "inputs", "reference", "trainer ms", "reference ms", "speed-up wall", "speed-up CPU",
                    "target"],
             title=f"loss forward+backward, batch {args.batch}")


if __name__ == "__main__":
    main()
