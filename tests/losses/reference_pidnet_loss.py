"""The official PIDNet loss, written the way XuJiacong/PIDNet (commit 4c158cf) computes it.

``utils/criterion.py`` (``OhemCrossEntropy``, ``CrossEntropy``, ``BondaryLoss``) and the
``FullModel.forward`` of ``utils/utils.py``: every output upsampled bilinearly to the label size
(align_corners=True), per-pixel CE plus a full ``sort`` of the true-class probabilities for OHEM
over the whole batch, the boundary-aware term as OHEM on labels masked by sigmoid(D) > 0.8.

The edge target is made per image, as the official data pipeline does: ``edge_loop`` computes it
image by image (the official ``cv2.Canny`` + ``cv2.dilate`` in the dataset's ``__getitem__``),
here with the trainer's ``boundary_target`` on a one-image batch (equal pixel for pixel to the
cv2 pipeline, see ``trainer/losses/boundary_target.py``), so the per-image cost is counted.

Used by the benchmark (scripts/bench_losses.py) and kept next to the tests that check equality.
Returns the same parts as ``trainer.losses.pidnet.pidnet_loss``: semantic, boundary,
boundary_aware. The official quirk of the aux term (per-pixel CE broadcast into a (B, H, W)
tensor, then averaged over all pixels) is reproduced.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.losses.boundary_target import boundary_target


def edge_loop(labels: Tensor, *, ignore_index: int = 255) -> Tensor:
    """(B, H, W) edge targets, one image at a time (as the official dataset does per sample)."""
    return torch.stack([boundary_target(label[None], ignore_index=ignore_index)[0] for label in labels])


def _ohem(score: Tensor, target: Tensor, *, ignore_index: int, threshold: float, min_kept: int, weight) -> Tensor:
    """Official OhemCrossEntropy._ohem_forward (sort-based)."""
    pred = F.softmax(score, dim=1)
    pixel_losses = F.cross_entropy(score, target, weight=weight, ignore_index=ignore_index, reduction="none")
    pixel_losses = pixel_losses.contiguous().view(-1)
    mask = target.contiguous().view(-1) != ignore_index
    tmp_target = target.clone()
    tmp_target[tmp_target == ignore_index] = 0
    pred = pred.gather(1, tmp_target.unsqueeze(1))
    pred, ind = pred.contiguous().view(-1)[mask].contiguous().sort()
    min_value = pred[min(min_kept, pred.numel() - 1)]
    threshold = max(min_value, threshold)
    pixel_losses = pixel_losses[mask][ind]
    pixel_losses = pixel_losses[pred < threshold]
    return pixel_losses.mean()


def pidnet_reference_loss(
    logits_p: Tensor,
    logits: Tensor,
    boundary_logits: Tensor,
    labels: Tensor,
    *,
    ignore_index: int = 255,
    ohem_threshold: float = 0.9,
    min_kept: int = 131072,
    balance_weights: tuple[float, float] = (0.4, 1.0),
    boundary_weight: float = 20.0,
    boundary_aware_weight: float = 1.0,
    boundary_threshold: float = 0.8,
    class_weights: Tensor | None = None,
) -> dict[str, Tensor]:
    size = labels.shape[-2:]
    logits_p, logits, boundary_logits = (
        F.interpolate(x, size=size, mode="bilinear", align_corners=True) for x in (logits_p, logits, boundary_logits)
    )
    min_kept = max(1, min_kept)
    options = {"ignore_index": ignore_index, "threshold": ohem_threshold, "min_kept": min_kept, "weight": class_weights}
    # official: loss_s = 0.4 * CE_none(P) + 1.0 * OHEM(I): a (B, H, W) tensor, averaged at the end
    aux = F.cross_entropy(logits_p, labels, weight=class_weights, ignore_index=ignore_index, reduction="none")
    semantic = (balance_weights[0] * aux + balance_weights[1] * _ohem(logits, labels, **options)).mean()
    # BondaryLoss: class-balanced BCE over all pixels (the official builds it from the dataset's edge)
    edge = edge_loop(labels, ignore_index=ignore_index)
    n, pos = edge.numel(), edge.sum()
    weight = torch.zeros_like(edge)
    weight[edge == 1] = (n - pos) / n
    weight[edge == 0] = pos / n
    boundary = boundary_weight * F.binary_cross_entropy_with_logits(boundary_logits[:, 0], edge, weight)
    filler = torch.ones_like(labels) * ignore_index
    bd_label = torch.where(torch.sigmoid(boundary_logits[:, 0]) > boundary_threshold, labels, filler)
    boundary_aware = boundary_aware_weight * _ohem(logits, bd_label, **options)
    return {"semantic": semantic, "boundary": boundary, "boundary_aware": boundary_aware}
