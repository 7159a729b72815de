"""Measures, for docs/fidelity.md, how far each loss is from its reference implementation and what each
deliberate deviation changes. CPU, a few seconds. Run from the repository root:

    .venv/bin/python scripts/measure_fidelity.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.losses.reference_detection_losses import retinanet_reference_loss, yolox_reference_loss  # noqa: E402
from tests.losses.reference_pidnet_loss import pidnet_reference_loss  # noqa: E402
from tests.losses.test_retinanet_loss import make_batch as retinanet_batch  # noqa: E402
from tests.losses.test_yolox_loss import make_batch as yolox_batch  # noqa: E402
from trainer.data.shapes import ShapesDataset  # noqa: E402
from trainer.data.transforms import build_transforms  # noqa: E402
from trainer.losses.boundary_target import boundary_target  # noqa: E402
from trainer.losses.cross_entropy import cross_entropy_loss  # noqa: E402
from trainer.losses.focal import focal_loss  # noqa: E402
from trainer.losses.pidnet import pidnet_loss, weighted_bce  # noqa: E402
from trainer.losses.retinanet import retinanet_loss  # noqa: E402
from trainer.losses.yolox import yolox_loss  # noqa: E402
from trainer.tasks.segmentation import SegmentationTask  # noqa: E402


def relative(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().clamp(min=1e-12).max())


def cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 16, 16, generator=generator)
    labels = torch.randint(0, 5, (4, 16, 16), generator=generator)
    labels[torch.rand(4, 16, 16, generator=generator) < 0.2] = 255
    weights = torch.rand(5, generator=generator) + 0.5
    ours = cross_entropy_loss(logits, labels, label_smoothing=0.1, class_weights=weights, ignore_index=255)
    ref = F.cross_entropy(logits, labels, weight=weights, label_smoothing=0.1, ignore_index=255)
    print(f"cross_entropy: relative difference to F.cross_entropy {relative(ours, ref):.1e}")
    ignored = torch.full_like(labels, 255)
    print(f"cross_entropy, all pixels ignored: ours {cross_entropy_loss(logits, ignored, ignore_index=255).item()},"
          f" F.cross_entropy {F.cross_entropy(logits, ignored, ignore_index=255).item()}")


def focal() -> None:
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(64, 7, generator=generator), torch.randint(0, 7, (64,), generator=generator)
    one_hot = F.one_hot(labels, 7).float()
    for reduction in ("mean", "sum"):
        ours = focal_loss(logits, labels, reduction=reduction)
        ref = sigmoid_focal_loss(logits, one_hot, reduction=reduction)
        print(f"focal_loss {reduction}: relative difference to torchvision {relative(ours, ref):.1e}")
    ratio = focal_loss(logits, labels, reduction="sample_sum") / focal_loss(logits, labels, reduction="mean")
    print(f"focal_loss sample_sum / mean with 7 classes: {ratio.item():.4f}")


def yolox() -> None:
    worst: dict[str, float] = {}
    for seed in range(5):
        batch = yolox_batch(counts=[0, 1, 3, 7, 12], seed=seed, num_classes=6, height=128, width=160)
        ours, ref = yolox_loss(**batch, use_l1=True), yolox_reference_loss(**batch, use_l1=True)
        for part in ours:
            worst[part] = max(worst.get(part, 0.0), relative(ours[part], ref[part]))
    print("yolox_loss vs official per-image reference, largest relative difference over 5 batches: "
          + ", ".join(f"{part} {value:.1e}" for part, value in worst.items()))


def retinanet() -> None:
    for box_loss in ("l1", "smooth_l1", "giou"):
        worst: dict[str, float] = {}
        for seed in range(3):
            batch = retinanet_batch(counts=[4, 0, 1, 7], seed=seed)
            ours, ref = retinanet_loss(**batch, box_loss=box_loss), retinanet_reference_loss(**batch, box_loss=box_loss)
            for part in ours:
                worst[part] = max(worst.get(part, 0.0), relative(ours[part], ref[part]))
        print(f"retinanet_loss ({box_loss}) vs torchvision RetinaNet.compute_loss: "
              + ", ".join(f"{part} {value:.1e}" for part, value in worst.items()))


def pidnet_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    logits_p, logits = torch.randn(2, 5, 8, 8, generator=generator), torch.randn(2, 5, 8, 8, generator=generator)
    boundary = 3 * torch.randn(2, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 5, (2, 32, 32), generator=generator)
    labels[:, :10] = 255  # 31 % ignored
    ours = pidnet_loss(logits_p, logits, boundary, labels, min_kept=500)
    ref = pidnet_reference_loss(logits_p, logits, boundary, labels, min_kept=500)
    print("pidnet_loss vs official formulation: " + ", ".join(f"{p} {relative(ours[p], ref[p]):.1e}" for p in ours))
    valid = pidnet_loss(logits_p, logits, boundary, labels, min_kept=500, aux_mean_over_valid=True)["semantic"]
    quirk = ours["semantic"]
    print(f"pidnet aux quirk, 31 % ignored: semantic part {quirk.item():.4f} (official) vs "
          f"{valid.item():.4f} (aux_mean_over_valid: true)")


def pidnet_boundary_target(samples: int = 64) -> None:
    """Official target (made before augmentation, edge_pad 6) vs the in-loss one (from the augmented label)."""
    base = ShapesDataset(task="segmentation", split="train", num_images=samples, image_size=256)
    transform, _ = build_transforms(
        [{"name": "boundary_target"}, {"name": "random_scale", "scale": [0.5, 2.0]},
         {"name": "random_crop", "size": 192, "pad_if_needed": True}, {"name": "hflip"}],
        task="segmentation",
    )
    torch.manual_seed(0)
    batch = SegmentationTask().collate([transform(base[i]) for i in range(samples)])
    data_edge = batch["boundary_labels"].float()
    label_edge = boundary_target(batch["labels"])
    union = ((data_edge + label_edge) > 0).sum()
    agree = ((data_edge * label_edge) > 0).sum()
    print(f"pidnet boundary target on {samples} shapes labels (256 px, scale 0.5-2, crop 192, flip): "
          f"edge pixels data {int(data_edge.sum())}, label {int(label_edge.sum())}, IoU {agree / union:.3f}")
    generator = torch.Generator().manual_seed(1)
    for name, logits in (
        ("zero logits", torch.zeros_like(data_edge)),
        ("random logits N(0, 2)", 2 * torch.randn(data_edge.shape, generator=generator)),
    ):
        official, in_loss = 20 * weighted_bce(logits, data_edge), 20 * weighted_bce(logits, label_edge)
        print(f"  boundary term, {name}: official {official.item():.4f}, in-loss {in_loss.item():.4f} "
              f"({(in_loss / official - 1).item():+.0%})")


def shapes_recipe_targets(samples: int = 128) -> None:
    """pidnet_s_shapes.yaml (128 px, flip only): where the two targets differ."""
    base = ShapesDataset(task="segmentation", split="train", num_images=samples, image_size=128)
    for flip in (0.0, 1.0):
        steps = [{"name": "boundary_target"}, {"name": "hflip", "p": flip}]
        transform, _ = build_transforms(steps, task="segmentation")
        batch = SegmentationTask().collate([transform(base[i]) for i in range(samples)])
        data_edge, label_edge = batch["boundary_labels"].float(), boundary_target(batch["labels"])
        differ = data_edge != label_edge
        print(f"pidnet_s_shapes targets, flip p={flip}: {int(differ.sum())} of {int(label_edge.sum())} edge pixels "
              f"differ ({differ.sum() / label_edge.sum():.1%}), {int(differ[:, 8:-8, 8:-8].sum())} of them more than "
              "8 px from the border")


if __name__ == "__main__":
    torch.set_num_threads(1)
    measures = (cross_entropy, focal, yolox, retinanet, pidnet_formula, pidnet_boundary_target, shapes_recipe_targets)
    for measure in measures:
        measure()
