"""PIDNet loss (official XuJiacong/PIDNet, commit 4c158cf: ``utils/criterion.py``, ``utils/utils.py``).

    semantic       = 0.4 * CE(P aux, y) + 1.0 * OHEM(main, y)
    boundary       = 20 * weighted BCE(D, edge(y))
    boundary_aware = 1.0 * OHEM(main, y where sigmoid(D) > 0.8 else ignore)

All three outputs are upsampled bilinearly to the label size first (``align_corners=True`` as in
the official configs). With ``ohem=False`` both OHEM terms become the official ``CrossEntropy``
(class-weighted mean over valid pixels).

OHEM over the whole batch at once, as the official code: among valid pixels, sort by the
probability of the true class; threshold = max(ohem_threshold, p at index min(min_kept,
n_valid - 1)); keep pixels with p strictly below; mean of their (class-weighted) CE. Done with a
``kthvalue`` over the batch (invalid pixels pushed to +inf; the largest valid p when there are no
more than min_kept valid pixels), no host sync, no per-image loop, no full sort. The main branch's
log-softmax is computed once and shared by the semantic and the boundary-aware terms.

The edge target is ``boundary_target(labels)`` (see ``boundary_target.py``): computed here, on
the device, from the augmented labels, so it is always aligned with them.

Decisions and deviations, with reasons:

* ``aux_mean_over_valid`` defaults to None = as the official code, which reproduces its quirk:
  with OHEM (every official config) the P-branch CE is per pixel (``reduction='none'``), broadcast
  into the total and averaged over *all* B*H*W pixels, ignored ones (CE 0) included:
  0.4 * sum_valid(w_y * CE) / (B*H*W); without OHEM it is the plain weighted mean over valid
  pixels. Every published result was trained with the quirk, so the default keeps it (the
  effective aux weight shrinks with the ignored fraction of the batch). True forces the weighted
  mean over valid pixels (an aux weight that means what it says), False forces the quirk.
* No valid pixel (official: IndexError) or nothing kept by OHEM (official: NaN when every pixel is
  tied at p >= threshold), an all-ignored boundary-aware label, no edge pixel: each term is a zero
  that keeps the graph (sum of the masked per-pixel losses), never NaN.
* Log-softmax once in float32 for both the CE and the probabilities (the official code also runs a
  softmax), so fp16 / bf16 logits under autocast are safe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.losses.boundary_target import boundary_target
from trainer.registry import LOSSES


def _log_prob(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float(), dim=1)


def _pixel_nll(
    log_prob: torch.Tensor, labels: torch.Tensor, ignore_index: int, class_weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel (class-weighted CE, true-class probability, valid mask), each (B, H, W)."""
    valid = labels != ignore_index
    target = torch.where(valid, labels, 0)
    nll = -log_prob.gather(1, target[:, None])[:, 0]
    prob = torch.exp(-nll.detach())
    if class_weights is not None:
        nll = nll * class_weights.to(nll.device)[target]
    return torch.where(valid, nll, 0.0), prob, valid


def _cross_entropy(
    log_prob: torch.Tensor, labels: torch.Tensor, *, ignore_index: int, class_weights: torch.Tensor | None,
    mean_over_valid: bool,
) -> torch.Tensor:
    nll, _, valid = _pixel_nll(log_prob, labels, ignore_index, class_weights)
    if not mean_over_valid:
        return nll.sum() / max(labels.numel(), 1)
    if class_weights is None:
        denom = valid.sum()
    else:
        target = torch.where(valid, labels, 0)
        denom = (class_weights.to(nll.device)[target] * valid).sum()
    return nll.sum() / torch.where(denom > 0, denom, torch.ones_like(denom))


def cross_entropy_2d(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = 255,
    class_weights: torch.Tensor | None = None,
    mean_over_valid: bool = True,
) -> torch.Tensor:
    """CE with ignore: weighted mean over valid pixels (``F.cross_entropy``), or, with
    ``mean_over_valid=False``, sum over valid pixels / all pixels (the official aux quirk)."""
    return _cross_entropy(
        _log_prob(logits), labels, ignore_index=ignore_index, class_weights=class_weights,
        mean_over_valid=mean_over_valid,
    )


def _ohem(
    log_prob: torch.Tensor, labels: torch.Tensor, *, ignore_index: int, threshold: float, min_kept: int,
    class_weights: torch.Tensor | None,
) -> torch.Tensor:
    nll, prob, valid = _pixel_nll(log_prob, labels, ignore_index, class_weights)
    min_kept = max(1, min_kept)  # as the official constructor
    flat = torch.where(valid, prob, torch.inf).flatten()
    num_valid = valid.sum()
    # the official sorted_valid[min(min_kept, n_valid - 1)]: the (min_kept + 1)-th smallest when
    # there are more valid pixels than min_kept, else the largest valid one (-inf when none: keeps none)
    k = min(min_kept + 1, flat.numel())
    kth = torch.where(
        num_valid - 1 >= min_kept,
        torch.kthvalue(flat, k).values,
        torch.where(valid.flatten(), flat, -torch.inf).amax(),
    )
    cut = torch.clamp(kth, min=threshold)
    keep = valid & (prob < cut)
    kept = keep.sum()
    return torch.where(keep, nll, 0.0).sum() / torch.clamp(kept, min=1)


def ohem_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = 255,
    threshold: float = 0.9,
    min_kept: int = 131072,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Official OHEM cross-entropy over the whole batch (see the module docstring)."""
    return _ohem(
        _log_prob(logits), labels, ignore_index=ignore_index, threshold=threshold, min_kept=min_kept,
        class_weights=class_weights,
    )


def weighted_bce(boundary_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class-balanced BCE over all pixels: positives weighted n_neg / n, negatives n_pos / n,
    mean over all pixels. ``boundary_logits`` (B, 1, H, W) or (B, H, W); ``target`` (B, H, W)."""
    logits = boundary_logits.float().reshape(target.shape)
    target = target.float()
    total = target.numel()
    positives = target.sum()
    weight = torch.where(target > 0.5, (total - positives) / total, positives / total)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="mean")


def pidnet_loss(
    logits_p: torch.Tensor,
    logits: torch.Tensor,
    boundary_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = 255,
    ohem: bool = True,
    ohem_threshold: float = 0.9,
    min_kept: int = 131072,
    balance_weights: tuple[float, float] = (0.4, 1.0),
    boundary_weight: float = 20.0,
    boundary_aware_weight: float = 1.0,
    boundary_threshold: float = 0.8,
    class_weights: torch.Tensor | None = None,
    align_corners: bool = True,
    aux_mean_over_valid: bool | None = None,
) -> dict[str, torch.Tensor]:
    """The three weighted parts of the official PIDNet loss; see the module docstring."""
    size = labels.shape[-2:]

    def upsample(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == size:
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)

    logits_p, logits, boundary_logits = upsample(logits_p), upsample(logits), upsample(boundary_logits)

    main_log_prob = _log_prob(logits)  # shared by the semantic and the boundary-aware terms

    def main_loss(target: torch.Tensor) -> torch.Tensor:
        if ohem:
            return _ohem(
                main_log_prob,
                target,
                ignore_index=ignore_index,
                threshold=ohem_threshold,
                min_kept=min_kept,
                class_weights=class_weights,
            )
        return _cross_entropy(
            main_log_prob, target, ignore_index=ignore_index, class_weights=class_weights, mean_over_valid=True
        )

    aux = cross_entropy_2d(
        logits_p,
        labels,
        ignore_index=ignore_index,
        class_weights=class_weights,
        mean_over_valid=(not ohem) if aux_mean_over_valid is None else aux_mean_over_valid,
    )
    semantic = balance_weights[0] * aux + balance_weights[1] * main_loss(labels)
    edge = boundary_target(labels, ignore_index=ignore_index)
    boundary = boundary_weight * weighted_bce(boundary_logits, edge)
    on_boundary = torch.sigmoid(boundary_logits[:, 0].detach().float()) > boundary_threshold
    aware_labels = torch.where(on_boundary, labels, ignore_index)
    boundary_aware = boundary_aware_weight * main_loss(aware_labels)
    return {"semantic": semantic, "boundary": boundary, "boundary_aware": boundary_aware}


@LOSSES.register("pidnet_loss", heads={"segmentation": ("pidnet",)})
class PIDNetLoss(nn.Module):
    """Official PIDNet loss; parts ``semantic``, ``boundary``, ``boundary_aware``."""

    def __init__(
        self,
        *,
        ignore_index: int = 255,
        ohem: bool = True,
        ohem_threshold: float = 0.9,
        min_kept: int = 131072,
        balance_weights: list[float] = [0.4, 1.0],  # noqa: B006 - never mutated, copied below
        boundary_weight: float = 20.0,
        boundary_aware_weight: float = 1.0,
        boundary_threshold: float = 0.8,
        class_weights: list[float] | None = None,
        align_corners: bool = True,
        aux_mean_over_valid: bool | None = None,
    ) -> None:
        super().__init__()
        if len(balance_weights) != 2:
            raise ValueError(f"balance_weights must be [aux P weight, main weight], got {balance_weights}")
        if not 0.0 < boundary_threshold < 1.0:
            raise ValueError(f"boundary_threshold must be in (0, 1), got {boundary_threshold}")
        self.options = {
            "ignore_index": ignore_index,
            "ohem": ohem,
            "ohem_threshold": ohem_threshold,
            "min_kept": min_kept,
            "balance_weights": (float(balance_weights[0]), float(balance_weights[1])),
            "boundary_weight": boundary_weight,
            "boundary_aware_weight": boundary_aware_weight,
            "boundary_threshold": boundary_threshold,
            "align_corners": align_corners,
            "aux_mean_over_valid": aux_mean_over_valid,
        }
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(
        self,
        *,
        logits_p: torch.Tensor,
        logits: torch.Tensor,
        boundary_logits: torch.Tensor,
        labels: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        if self.class_weights is not None and self.class_weights.numel() != logits.shape[1]:
            raise ValueError(
                f"class_weights has {self.class_weights.numel()} entries but the model predicts "
                f"{logits.shape[1]} classes"
            )
        return pidnet_loss(logits_p, logits, boundary_logits, labels, class_weights=self.class_weights, **self.options)
