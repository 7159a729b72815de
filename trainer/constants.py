"""Values the whole pipeline agrees on; a base module that data, models, losses and metrics import."""

from __future__ import annotations

IGNORE_INDEX = 255  # segmentation pixels to ignore: masks, crop padding, losses and metrics all use it
