"""Boundary (edge) target of a train-id label map, for PIDNet's D branch. Pure functions, batched,
on the labels' device, no cv2.

The official PIDNet (``datasets/base_dataset.py`` ``gen_sample``) makes it with
``cv2.Canny(label, 0.1, 0.2)``, zeroes the edges within 6 px of the border (``edge_pad``), dilates
with a 4 x 4 window of ones and keeps ``> 50``. On an integer map every id change has an L1 Sobel
magnitude >= 1, above both hysteresis thresholds, so Canny reduces to the Sobel (3 x 3, replicated
border) and its non-maximum suppression: ``label_edges`` is exactly that (OpenCV's fixed-point
sector test and its strict / non-strict neighbour comparisons), so on a straight step it keeps the
pixel before the step, and the dilation (anchor (2, 2)) makes a band of 4 pixels, 2 on each side.
The ignore id (255) is an id like any other. Where it is made (data step or loss) and how that
differs from the reference: docs/fidelity.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.constants import IGNORE_INDEX

# OpenCV's fixed-point tan(22.5 deg) (CANNY_SHIFT = 15).
_SHIFT = 15
_TG22 = int(0.4142135623730950488016887242097 * (1 << _SHIFT) + 0.5)


def label_edges(labels: torch.Tensor) -> torch.Tensor:
    """``cv2.Canny(labels, 0.1, 0.2) > 0`` for (B, H, W) integer maps with ids in [0, 255]: bool."""
    height, width = labels.shape[-2:]
    ids = labels.to(torch.int16)  # Sobel of ids <= 255 stays within +-1020, the L1 magnitude within 2040
    padded = torch.cat([ids[:, :1], ids, ids[:, -1:]], dim=1)  # replicated border, as OpenCV's Sobel
    padded = torch.cat([padded[:, :, :1], padded, padded[:, :, -1:]], dim=2)
    diff_x = padded[:, :, 2:] - padded[:, :, :-2]  # separable Sobel: [-1 0 1] x [1 2 1]^T and its transpose
    dx = diff_x[:, :-2] + 2 * diff_x[:, 1:-1] + diff_x[:, 2:]
    smooth_x = padded[:, :, :-2] + 2 * padded[:, :, 1:-1] + padded[:, :, 2:]
    dy = smooth_x[:, 2:] - smooth_x[:, :-2]
    magnitude = dx.abs() + dy.abs()
    mag = F.pad(magnitude, (1, 1, 1, 1))  # zero outside the image, as OpenCV's buffer

    def near(di: int, dj: int) -> torch.Tensor:
        return mag[:, 1 + di : 1 + di + height, 1 + dj : 1 + dj + width]

    abs_x = dx.abs().to(torch.int32)
    abs_y = dy.abs().to(torch.int32) << _SHIFT
    tg22 = abs_x * _TG22
    horizontal = abs_y < tg22  # gradient along x: compare with left / right
    vertical = ~horizontal & (abs_y > tg22 + (abs_x << (_SHIFT + 1)))
    diagonal = ~(horizontal | vertical)
    same_sign = (dx < 0) == (dy < 0)
    keep_h = (magnitude > near(0, -1)) & (magnitude >= near(0, 1))
    keep_v = (magnitude > near(-1, 0)) & (magnitude >= near(1, 0))
    keep_d = torch.where(
        same_sign,
        (magnitude > near(-1, -1)) & (magnitude > near(1, 1)),
        (magnitude > near(-1, 1)) & (magnitude > near(1, -1)),
    )
    keep = (horizontal & keep_h) | (vertical & keep_v) | (diagonal & keep_d)
    return keep & (magnitude > 0)


def _dilate(edge: torch.Tensor, size: int) -> torch.Tensor:
    """``cv2.dilate`` with a size x size window of ones, anchor (size // 2, size // 2), as a separable
    running max: the window covers offsets -(size // 2) .. size - 1 - size // 2."""
    height, width = edge.shape[-2:]
    before, after = size // 2, size - 1 - size // 2
    padded = F.pad(edge, (before, after, before, after))
    rows = padded[:, :, :width]
    for offset in range(1, size):
        rows = torch.maximum(rows, padded[:, :, offset : offset + width])
    out = rows[:, :height]
    for offset in range(1, size):
        out = torch.maximum(out, rows[:, offset : offset + height])
    return out


def boundary_target(
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    dilation: int = 4,
    border: int = 0,
    ignore_is_edge: bool = True,
) -> torch.Tensor:
    """Edge band of a (B, H, W) integer label map as a (B, H, W) float tensor of {0, 1}.

    ``dilation``: side of the square dilation window (official 4; 0 or 1 = no dilation).
    ``border``: drop edges closer than this to the image border, before dilation (official
    ``edge_pad``: 6).
    ``ignore_is_edge``: True (official) treats ``ignore_index`` as an ordinary id; False drops
    every edge pixel that has an ignore pixel among its 8 neighbours or is one.
    """
    if labels.dim() != 3:
        raise ValueError(f"boundary_target expects labels of shape (B, H, W), got {tuple(labels.shape)}")
    # Canny sees uint8 ids; only equality matters, so map ignore to 255 and clamp the rest.
    ids = torch.where(labels == ignore_index, 255, labels.clamp(0, 254))
    edge = label_edges(ids).to(torch.uint8)
    if not ignore_is_edge:
        near_ignore = F.max_pool2d((ids == 255).float()[:, None], 3, stride=1, padding=1)[:, 0]
        edge = edge * (near_ignore == 0)
    if border > 0:
        edge[:, :border] = 0
        edge[:, -border:] = 0
        edge[:, :, :border] = 0
        edge[:, :, -border:] = 0
    if dilation > 1:
        edge = _dilate(edge, dilation)
    return edge.float()
