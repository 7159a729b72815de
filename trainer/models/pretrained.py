"""Where published pretrained weights come from: torchvision's weights API and its cache.

``pretrained: imagenet`` on a torchvision backbone means the architecture's ``DEFAULT`` weights
(``torchvision.models.get_model_weights(arch).DEFAULT``). The file lives in torch's hub cache,
``$TORCH_HOME/hub/checkpoints/<file name of the URL>``: it is used when there, downloaded there when
not. Offline (no network, or ``TRAINER_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` set) without the file,
`imagenet_weights_file` raises a `WeightsError` naming the URL and the path to put the file at.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision

from trainer.models.weights import WeightsError

IMAGENET = "imagenet"


def offline() -> bool:
    """True when the environment forbids downloads (``TRAINER_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1)."""
    flags = (os.environ.get(name, "").strip().lower() for name in ("TRAINER_OFFLINE", "HF_HUB_OFFLINE"))
    return any(flag in ("1", "true", "yes") for flag in flags)


def cached_download(url: str) -> Path:
    """The file of `url` in torch's hub cache, downloaded there (atomically) when absent."""
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if target.is_file():
        return target
    where = f"download it elsewhere and put it at {target}"
    if offline():
        raise WeightsError(f"pretrained weights {url} are not in the cache and downloads are off; {where}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
        raise WeightsError(f"cannot download pretrained weights {url} ({error}); {where}") from None
    return target


def imagenet_weights_file(arch: str) -> Path:
    """The local file of torchvision's DEFAULT weights for `arch` (e.g. ``resnet50``)."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    return cached_download(weights.url)


def no_published_weights(model: str, *, instead: str) -> WeightsError:
    """The error for ``pretrained: imagenet`` on a model without downloadable weights here."""
    return WeightsError(f"{model} has no weights to download for 'pretrained: {IMAGENET}'; {instead}")
