"""`fc`: the classification head (global average pool of the last feature map, dropout, linear)."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from trainer.constraints import Range
from trainer.registry import HEADS


@HEADS.register("fc", tasks=("classification",))
class FCHead(nn.Module):
    """Outputs ``logits`` (B, C) from the last (coarsest) feature map."""

    def __init__(
        self,
        *,
        in_channels: list[int],
        in_strides: list[int],
        num_classes: int,
        dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(int(in_channels[-1]), num_classes)

    def forward(self, features: list[torch.Tensor], *, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        x = self.pool(features[-1]).flatten(1)
        return {"logits": self.linear(self.dropout(x))}
