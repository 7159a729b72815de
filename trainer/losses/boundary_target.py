"""Boundary (edge) target of a train-id label map, for PIDNet's D branch. Pure functions.

The official PIDNet pipeline (``datasets/base_dataset.py``, commit 4c158cf) does, per image, on
the CPU, before augmentation:

    edge = cv2.Canny(label, 0.1, 0.2)                     # uint8 train ids, 255 = ignore
    edge[:6, :] = edge[-6:, :] = edge[:, :6] = edge[:, -6:] = 0   # Cityscapes only ("edge_pad")
    edge = cv2.dilate(edge, np.ones((4, 4))) > 50         # {0, 1}

On an integer map every id change gives an L1 Sobel magnitude >= 1, above both hysteresis
thresholds (OpenCV floors them to 0), so Canny reduces to: Sobel (3x3, replicated border) + its
non-max suppression; on a straight step it keeps the first pixel (top / left). The 4x4 dilation
(anchor (2, 2)) turns that into a band of 4 pixels, 2 on each side of the step. Ignore (255) is an
id like any other, so the border of a void region is an edge.

``boundary_target`` reproduces exactly that, batched on the labels' device, with no cv2:
``label_edges`` is OpenCV's Canny for integer maps (same Sobel, same fixed-point tan(22.5 deg)
sector test, same strict / non-strict neighbour comparisons; equal pixel for pixel to
``cv2.Canny(label, 0.1, 0.2)`` on random label maps, ignore ids included), the dilation is a
``max_pool2d`` with the same window and anchor, and ``border`` is the official ``edge_pad``.

Deliberate differences from the official pipeline (all from computing it after augmentation,
from the augmented label, so that the target is always aligned with it):

* the band is 4 px wide at the training resolution; the official one is computed at full
  resolution and rescaled with the image (2 to 8 px for scales 0.5 to 2);
* where a crop pads the label with the ignore id, the pad border is an edge (the official pipeline
  pads its precomputed edge map with 0). ``ignore_is_edge=False`` removes every edge pixel next to
  an ignore pixel instead (which also drops the borders of void regions, kept officially);
* ``border`` applies to the border of the augmented (cropped) label, not of the original image,
  so the loss leaves it at 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# OpenCV's fixed-point tan(22.5 deg) (CANNY_SHIFT = 15).
_SHIFT = 15
_TG22 = int(0.4142135623730950488016887242097 * (1 << _SHIFT) + 0.5)


def _shifted(padded: torch.Tensor, di: int, dj: int, height: int, width: int) -> torch.Tensor:
    """Value at (i + di, j + dj) of a map padded by 1 on each side, for every (i, j)."""
    return padded[:, 1 + di : 1 + di + height, 1 + dj : 1 + dj + width]


def label_edges(labels: torch.Tensor) -> torch.Tensor:
    """``cv2.Canny(labels, 0.1, 0.2) > 0`` for (B, H, W) integer maps with ids in [0, 255]: bool."""
    height, width = labels.shape[-2:]
    padded = F.pad(labels[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0].to(torch.int32)

    def at(di: int, dj: int) -> torch.Tensor:
        return _shifted(padded, di, dj, height, width)

    dx = (at(-1, 1) - at(-1, -1)) + 2 * (at(0, 1) - at(0, -1)) + (at(1, 1) - at(1, -1))
    dy = (at(1, -1) - at(-1, -1)) + 2 * (at(1, 0) - at(-1, 0)) + (at(1, 1) - at(-1, 1))
    magnitude = dx.abs() + dy.abs()
    mag = F.pad(magnitude, (1, 1, 1, 1))  # zero outside the image, as OpenCV's buffer

    def near(di: int, dj: int) -> torch.Tensor:
        return _shifted(mag, di, dj, height, width)

    abs_x, abs_y = dx.abs(), dy.abs() << _SHIFT
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


def boundary_target(
    labels: torch.Tensor,
    *,
    ignore_index: int = 255,
    dilation: int = 4,
    border: int = 0,
    ignore_is_edge: bool = True,
) -> torch.Tensor:
    """Edge band of a (B, H, W) integer label map as a (B, H, W) float tensor of {0, 1}.

    ``dilation``: side of the square dilation window (official 4; 0 or 1 = no dilation).
    ``border``: drop edges closer than this to the image border, before dilation (official 6
    for Cityscapes, applied there to the un-augmented image).
    ``ignore_is_edge``: True (official) treats ``ignore_index`` as an ordinary id; False drops
    every edge pixel that has an ignore pixel among its 8 neighbours or is one.
    """
    if labels.dim() != 3:
        raise ValueError(f"boundary_target expects labels of shape (B, H, W), got {tuple(labels.shape)}")
    # Canny sees uint8 ids; only equality matters, so map ignore to 255 and clamp the rest.
    ids = torch.where(labels == ignore_index, 255, labels.clamp(0, 254))
    edge = label_edges(ids).float()
    if not ignore_is_edge:
        near_ignore = F.max_pool2d((ids == 255).float()[:, None], 3, stride=1, padding=1)[:, 0]
        edge = edge * (near_ignore == 0)
    if border > 0:
        height, width = edge.shape[-2:]
        rows = torch.arange(height, device=edge.device)
        cols = torch.arange(width, device=edge.device)
        inside_rows = (rows >= border) & (rows < height - border)
        inside_cols = (cols >= border) & (cols < width - border)
        inside = inside_rows[:, None] & inside_cols[None, :]
        edge = edge * inside
    if dilation > 1:
        # cv2.dilate anchors a k x k kernel at (k // 2, k // 2): the window covers offsets
        # -(k // 2) .. k - 1 - k // 2, hence the asymmetric zero padding for even k.
        before, after = dilation // 2, dilation - 1 - dilation // 2
        padded = F.pad(edge[:, None], (before, after, before, after))
        edge = F.max_pool2d(padded, kernel_size=dilation, stride=1)[:, 0]
    return edge
