"""retinanet_loss equals torchvision's RetinaNet loss (matcher + RetinaNetHead.compute_loss)."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from tests.losses.reference_detection_losses import retinanet_reference_loss
from trainer.losses.retinanet import RetinaNetLoss, match_anchors, retinanet_loss
from trainer.registry import LOSSES

NUM_CLASSES = 5


def make_anchors(*, height: int, width: int) -> torch.Tensor:
    """torchvision's RetinaNet anchors (P3-P7) for one (height, width) input."""
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
    generator = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    images = ImageList(torch.zeros(1, 3, height, width), [(height, width)])
    features = [torch.zeros(1, 1, max(1, height // s), max(1, width // s)) for s in (8, 16, 32, 64, 128)]
    return generator(images, features)[0]


def random_boxes(generator: torch.Generator, n: int, *, height: int, width: int) -> torch.Tensor:
    size = torch.rand(n, 2, generator=generator) * torch.tensor([width * 0.6, height * 0.6]) + 12
    corner = torch.rand(n, 2, generator=generator) * (torch.tensor([width, height]) - size)
    return torch.cat([corner, corner + size], dim=1)


def make_batch(*, counts: list[int], height: int = 128, width: int = 192, seed: int = 0):
    """Padded gts (label -1 on padding rows), random head outputs, anchors for a non-square input."""
    generator = torch.Generator().manual_seed(seed)
    anchors = make_anchors(height=height, width=width)
    num_gt = max(counts)
    gt_boxes = torch.zeros(len(counts), num_gt, 4)
    gt_labels = torch.full((len(counts), num_gt), -1, dtype=torch.int64)
    for b, n in enumerate(counts):
        gt_boxes[b, :n] = random_boxes(generator, n, height=height, width=width)
        gt_labels[b, :n] = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    cls_logits = torch.randn(len(counts), anchors.shape[0], NUM_CLASSES, generator=generator) - 2.0
    box_regression = 0.3 * torch.randn(len(counts), anchors.shape[0], 4, generator=generator)
    return {
        "cls_logits": cls_logits,
        "box_regression": box_regression,
        "anchors": anchors,
        "gt_boxes": gt_boxes,
        "gt_labels": gt_labels,
    }


def both_losses(*, box_loss: str, cls_logits, box_regression, anchors, gt_boxes, gt_labels):
    ours_inputs = [cls_logits.clone().requires_grad_(), box_regression.clone().requires_grad_()]
    ref_inputs = [cls_logits.clone().requires_grad_(), box_regression.clone().requires_grad_()]
    ours = retinanet_loss(
        cls_logits=ours_inputs[0],
        box_regression=ours_inputs[1],
        anchors=anchors,
        gt_boxes=gt_boxes,
        gt_labels=gt_labels,
        box_loss=box_loss,
    )
    ref = retinanet_reference_loss(
        cls_logits=ref_inputs[0],
        box_regression=ref_inputs[1],
        anchors=anchors,
        gt_boxes=gt_boxes,
        gt_labels=gt_labels,
        box_loss=box_loss,
    )
    return ours, ref, ours_inputs, ref_inputs


@pytest.mark.parametrize("box_loss", ["l1", "smooth_l1", "giou"])
def test_equals_torchvision_with_empty_image_and_non_square_input(box_loss):
    batch = make_batch(counts=[4, 0, 1, 7])
    ours, ref, ours_inputs, ref_inputs = both_losses(box_loss=box_loss, **batch)
    assert set(ours) == {"cls", "box"}
    for part in ("cls", "box"):
        assert ours[part].ndim == 0
        torch.testing.assert_close(ours[part], ref[part], rtol=1e-5, atol=1e-6)
    sum(ours.values()).backward()
    sum(ref.values()).backward()
    for mine, theirs in zip(ours_inputs, ref_inputs):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("box_loss", ["l1", "giou"])
def test_equals_torchvision_on_other_sizes_and_seeds(box_loss):
    for seed, (height, width) in enumerate([(256, 160), (96, 96), (200, 320)]):
        batch = make_batch(counts=[3, 2], height=height, width=width, seed=seed + 10)
        ours, ref, _, _ = both_losses(box_loss=box_loss, **batch)
        for part in ("cls", "box"):
            torch.testing.assert_close(ours[part], ref[part], rtol=1e-5, atol=1e-6)


def test_matcher_equals_torchvision_including_low_quality_and_padding_rows():
    batch = make_batch(counts=[5, 3, 0], seed=3)
    anchors, gt_boxes, gt_labels = batch["anchors"], batch["gt_boxes"], batch["gt_labels"]
    gt_boxes[1, 1] = torch.tensor([1000.0, 1000.0, 1010.0, 1010.0])  # overlaps no anchor: the IoU-0 quirk
    gt_labels[0, 2] = -1  # a padding (e.g. crowd) row in the middle
    matcher = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)
    ours = match_anchors(anchors=anchors, gt_boxes=gt_boxes, gt_valid=gt_labels >= 0)
    for b in range(gt_boxes.shape[0]):
        valid_index = torch.nonzero(gt_labels[b] >= 0).flatten()
        if valid_index.numel() == 0:
            assert (ours[b] == -1).all()
            continue
        expected = matcher(box_iou(gt_boxes[b][valid_index], anchors))
        mapped = torch.where(ours[b] >= 0, torch.searchsorted(valid_index, ours[b].clamp(min=0)), ours[b])
        assert torch.equal(mapped, expected)
    assert (ours[1] >= 0).all()  # the quirk made every anchor of image 1 foreground, as in torchvision
    ours_loss = retinanet_loss(**batch)
    ref_loss = retinanet_reference_loss(**batch)
    for part in ("cls", "box"):
        torch.testing.assert_close(ours_loss[part], ref_loss[part], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("allow_low_quality_matches", [True, False])
def test_thresholds_and_low_quality_option_match_torchvision(allow_low_quality_matches):
    kwargs = make_batch(counts=[3, 5], seed=7)
    options = {"fg_iou_threshold": 0.6, "bg_iou_threshold": 0.3, "allow_low_quality_matches": allow_low_quality_matches}
    ours = retinanet_loss(**kwargs, box_loss="smooth_l1", **options)
    ref = retinanet_reference_loss(**kwargs, box_loss="smooth_l1", **options)
    for part in ("cls", "box"):
        torch.testing.assert_close(ours[part], ref[part], rtol=1e-5, atol=1e-6)


def test_batch_without_any_box_is_all_background():
    batch = make_batch(counts=[1, 1], seed=1)
    cls_logits, box_regression, anchors = batch["cls_logits"], batch["box_regression"], batch["anchors"]
    for gt_boxes, gt_labels in [
        (torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.int64)),
        (torch.zeros(2, 3, 4), torch.full((2, 3), -1, dtype=torch.int64)),
    ]:
        cls_in = cls_logits.clone().requires_grad_()
        ours = retinanet_loss(
            cls_logits=cls_in, box_regression=box_regression, anchors=anchors, gt_boxes=gt_boxes, gt_labels=gt_labels
        )
        ref = retinanet_reference_loss(
            cls_logits=cls_logits,
            box_regression=box_regression,
            anchors=anchors,
            gt_boxes=gt_boxes,
            gt_labels=gt_labels,
        )
        torch.testing.assert_close(ours["cls"], ref["cls"], rtol=1e-5, atol=1e-6)
        assert ours["box"].item() == 0.0
        ours["cls"].backward()
        assert torch.isfinite(cls_in.grad).all()


def test_module_options_alpha_gamma_and_registration():
    kwargs = make_batch(counts=[2, 3], seed=5)
    default = RetinaNetLoss()(**kwargs)
    torch.testing.assert_close(default["cls"], retinanet_reference_loss(**kwargs)["cls"], rtol=1e-5, atol=1e-6)
    other = RetinaNetLoss(alpha=-1.0, gamma=0.0)(**kwargs)  # plain BCE over non-ignored anchors
    assert not torch.allclose(other["cls"], default["cls"])
    assert LOSSES.get("retinanet_loss") is RetinaNetLoss
    assert LOSSES.meta("retinanet_loss")["heads"] == {"detection": ("anchor_decoupled",)}


def test_invalid_options_raise_clear_errors():
    with pytest.raises(ValueError, match="box_loss must be one of l1, smooth_l1, giou"):
        RetinaNetLoss(box_loss="iou")
    with pytest.raises(ValueError, match="bg_iou_threshold"):
        RetinaNetLoss(fg_iou_threshold=0.3, bg_iou_threshold=0.5)
    with pytest.raises(ValueError, match="gamma"):
        RetinaNetLoss(gamma=-1.0)


def test_bf16_autocast_is_finite():
    batch = make_batch(counts=[2, 0, 4], seed=2)
    cls_in = batch.pop("cls_logits").bfloat16().requires_grad_()
    box_in = batch.pop("box_regression").bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        parts = RetinaNetLoss(box_loss="giou")(cls_logits=cls_in, box_regression=box_in, **batch)
    sum(parts.values()).backward()
    assert all(torch.isfinite(value) for value in parts.values())
    assert torch.isfinite(cls_in.grad.float()).all() and torch.isfinite(box_in.grad.float()).all()
