"""Classification metrics: top-1 / top-5 accuracy and a confusion matrix.

Everything is accumulated on the device: ``update`` never synchronises with the host (the
confusion matrix is counted with ``scatter_add_`` into a fixed-size tensor, because
``torch.bincount`` on CUDA reads the input's maximum back to the host to size its output).
``compute`` reduces the counts across ranks (``torch.distributed.all_reduce``, when a process
group is initialised) and returns fractions in [0, 1].

Labels may be class indices (B,) or probabilities (B, C) after mixup/cutmix; probabilities are
scored against their argmax.  Labels outside [0, C) (e.g. -100) are not counted.
``top5`` is top-min(5, C) accuracy.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def all_reduce_sum(tensors: list[Tensor]) -> list[Tensor]:
    """Sums of ``tensors`` over all ranks, as new tensors (the inputs are left unchanged)."""
    reduced = [t.clone() for t in tensors]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in reduced:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return reduced


class ClassificationMetrics:
    """Accumulates top-1/top-5 hits and a (gt row, prediction column) confusion matrix."""

    def __init__(self, *, num_classes: int, device: torch.device | str = "cpu") -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self.topk = min(5, self.num_classes)
        self.reset()

    def reset(self) -> None:
        # counts = [samples, top1 hits, topk hits]
        self._counts = torch.zeros(3, dtype=torch.int64, device=self.device)
        # one extra bin collects the samples whose label is out of range; dropped when read
        self._confusion = torch.zeros(self.num_classes**2 + 1, dtype=torch.int64, device=self.device)

    @torch.no_grad()
    def update(self, *, logits: Tensor, labels: Tensor) -> None:
        """Adds a batch: ``logits`` (B, C); ``labels`` (B,) indices or (B, C) probabilities."""
        logits = logits.detach().to(self.device)
        labels = labels.detach().to(self.device)
        if labels.is_floating_point():
            labels = labels.argmax(dim=1)
        labels = labels.long()
        num_classes = self.num_classes
        valid = (labels >= 0) & (labels < num_classes)
        top = logits.topk(self.topk, dim=1).indices
        hits = (top == labels.unsqueeze(1)) & valid.unsqueeze(1)
        batch_counts = torch.stack([valid.sum(), hits[:, 0].sum(), hits.any(dim=1).sum()])
        self._counts += batch_counts
        index = torch.where(valid, labels * num_classes + top[:, 0], num_classes * num_classes)
        self._confusion.scatter_add_(0, index, torch.ones_like(index))

    def sync(self) -> tuple[Tensor, Tensor]:
        """Counts and confusion matrix summed over ranks (copies; the local state is unchanged)."""
        counts, confusion = all_reduce_sum([self._counts, self._confusion])
        return counts, confusion[:-1].view(self.num_classes, self.num_classes)

    def compute(self) -> dict[str, float]:
        """``{"top1": ..., "top5": ...}`` as fractions; 0.0 when nothing was counted."""
        counts = self.sync()[0].tolist()
        total = max(counts[0], 1)
        return {"top1": counts[1] / total, "top5": counts[2] / total}

    def confusion_matrix(self) -> Tensor:
        """(C, C) int64 counts over all ranks: row = ground truth, column = top-1 prediction."""
        return self.sync()[1]
