"""PIDNet loss (official XuJiacong/PIDNet ``utils/criterion.py`` + ``FullModel.forward``).

    semantic       = 0.4 * CE(P aux, y) + 1.0 * OHEM(main, y)
    boundary       = 20 * weighted BCE(D, edge)
    boundary_aware = 1.0 * OHEM(main, y where sigmoid(D) > 0.8 else ignore)

All three outputs are upsampled bilinearly to the label size first (``align_corners=True`` as in
the official configs); with ``ohem=False`` both OHEM terms are the class-weighted mean CE over
valid pixels. OHEM runs over the whole batch: among valid pixels, threshold = max(ohem_threshold,
true-class p at index min(min_kept, n_valid - 1)), keep pixels with p strictly below, mean of their
CE (a ``kthvalue``, no sort, no host sync). Every term is finite: an empty selection is a zero
that keeps the graph.

``edge`` is, with ``boundary_target: data``, the batch's ``boundary_labels`` (the official target,
made by the ``boundary_target`` data step before augmentation); with ``label`` (default), it is
``boundary_target(labels)`` computed here from the augmented labels. ``aux_mean_over_valid``: None
(default) reproduces the official reduction of the aux term, True / False force the mean over valid
pixels / over all pixels. Deviations from the reference, their reasons and measured effects:
docs/fidelity.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from trainer.constants import IGNORE_INDEX
from trainer.constraints import NonNegative, Probability
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
    ignore_index: int = IGNORE_INDEX,
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
    ignore_index: int = IGNORE_INDEX,
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


def _edge_target(labels: torch.Tensor, boundary_labels: torch.Tensor | None, *, ignore_index: int) -> torch.Tensor:
    """The given edge target, or the one made from ``labels`` when none is given."""
    if boundary_labels is None:
        return boundary_target(labels, ignore_index=ignore_index)
    if boundary_labels.shape != labels.shape:
        raise ValueError(
            f"boundary_labels {tuple(boundary_labels.shape)} and labels {tuple(labels.shape)} differ in shape"
        )
    return boundary_labels


def pidnet_loss(
    logits_p: torch.Tensor,
    logits: torch.Tensor,
    boundary_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    boundary_labels: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
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
    """The three weighted parts of the official PIDNet loss; see the module docstring.

    ``boundary_labels`` (B, H, W) {0, 1}: the edge target; None computes it from ``labels``."""
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
                main_log_prob, target, ignore_index=ignore_index, threshold=ohem_threshold, min_kept=min_kept,
                class_weights=class_weights,
            )
        return _cross_entropy(
            main_log_prob, target, ignore_index=ignore_index, class_weights=class_weights, mean_over_valid=True
        )

    aux = cross_entropy_2d(
        logits_p, labels, ignore_index=ignore_index, class_weights=class_weights,
        mean_over_valid=(not ohem) if aux_mean_over_valid is None else aux_mean_over_valid,
    )
    semantic = balance_weights[0] * aux + balance_weights[1] * main_loss(labels)
    edge = _edge_target(labels, boundary_labels, ignore_index=ignore_index)
    boundary = boundary_weight * weighted_bce(boundary_logits, edge)
    on_boundary = torch.sigmoid(boundary_logits[:, 0].detach().float()) > boundary_threshold
    aware_labels = torch.where(on_boundary, labels, ignore_index)
    boundary_aware = boundary_aware_weight * main_loss(aware_labels)
    return {"semantic": semantic, "boundary": boundary, "boundary_aware": boundary_aware}


@LOSSES.register("pidnet_loss", heads={"segmentation": ("pidnet",)}, parts=("semantic", "boundary", "boundary_aware"))
class PIDNetLoss(nn.Module):
    """Official PIDNet loss; parts ``semantic``, ``boundary``, ``boundary_aware``.

    ``boundary_target``: ``label`` (default) makes the edge target from the augmented labels in the
    loss; ``data`` reads the batch's ``boundary_labels``, made by the ``boundary_target`` data step
    (first in ``augmentation.train``: the official target).
    """

    input_hints = {
        "boundary_labels": "put {name: boundary_target} first in augmentation.train (the official target, made "
        "before augmentation), or set boundary_target: label on the loss (the target made from the augmented label)"
    }

    LABEL_MODE_WITH_DATA = (
        "the batch carries boundary_labels (the boundary_target step of augmentation.train) but the loss has "
        "boundary_target: label; set boundary_target: data to train on them, or remove the step"
    )

    def __init__(
        self,
        *,
        ignore_index: int = IGNORE_INDEX,
        ohem: bool = True,
        ohem_threshold: Annotated[float, Probability] = 0.9,
        min_kept: Annotated[int, NonNegative] = 131072,
        balance_weights: list[Annotated[float, NonNegative]] = [0.4, 1.0],  # noqa: B006 - never mutated, copied below
        boundary_weight: Annotated[float, NonNegative] = 20.0,
        boundary_aware_weight: Annotated[float, NonNegative] = 1.0,
        boundary_threshold: Annotated[float, Probability] = 0.8,
        class_weights: list[Annotated[float, NonNegative]] | None = None,
        align_corners: bool = True,
        aux_mean_over_valid: bool | None = None,
        boundary_target: Literal["label", "data"] = "label",
    ) -> None:
        super().__init__()
        if len(balance_weights) != 2:
            raise ValueError(f"balance_weights must be [aux P weight, main weight], got {balance_weights}")
        if not 0.0 < boundary_threshold < 1.0:
            raise ValueError(f"boundary_threshold must be in (0, 1), got {boundary_threshold}")
        if boundary_target not in ("label", "data"):
            raise ValueError(f"boundary_target must be 'label' or 'data', got {boundary_target!r}")
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
        self.boundary_target = boundary_target
        self.required_inputs = ("boundary_labels",) if boundary_target == "data" else ()
        self.refused_inputs = {} if boundary_target == "data" else {"boundary_labels": self.LABEL_MODE_WITH_DATA}
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(
        self,
        *,
        logits_p: torch.Tensor,
        logits: torch.Tensor,
        boundary_logits: torch.Tensor,
        labels: torch.Tensor,
        boundary_labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if self.class_weights is not None and self.class_weights.numel() != logits.shape[1]:
            raise ValueError(
                f"class_weights has {self.class_weights.numel()} entries but the model predicts "
                f"{logits.shape[1]} classes"
            )
        if self.boundary_target == "data" and boundary_labels is None:
            hint = self.input_hints["boundary_labels"]
            raise ValueError(f"pidnet_loss (boundary_target: data) needs boundary_labels: {hint}")
        if self.boundary_target == "label" and boundary_labels is not None:
            raise ValueError(f"pidnet_loss: {self.LABEL_MODE_WITH_DATA}")
        return pidnet_loss(
            logits_p, logits, boundary_logits, labels, boundary_labels=boundary_labels,
            class_weights=self.class_weights, **self.options,
        )
