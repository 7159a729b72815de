"""`pretrained: imagenet` on every torchvision backbone: torchvision's DEFAULT weights from the torch hub
cache ($TORCH_HOME/hub/checkpoints), and the offline error naming the URL and the path. No network."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
import torchvision

from trainer.components import load_builtin_components
from trainer.models.weights import WeightsError
from trainer.registry import BACKBONES, FULL_MODELS

load_builtin_components()
TORCHVISION = sorted(name for name in BACKBONES.names() if BACKBONES.meta(name).get("family") == "torchvision")


def _cache_file(torch_home: Path, arch: str) -> Path:
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return torch_home / "hub" / "checkpoints" / Path(urlparse(url).path).name


def test_every_torchvision_backbone_has_default_weights():
    assert len(TORCHVISION) >= 6
    for arch in TORCHVISION:
        assert torchvision.models.get_model_weights(arch).DEFAULT.url.startswith("https://")


@pytest.mark.parametrize("arch", TORCHVISION)
def test_imagenet_weights_come_from_the_torch_hub_cache(arch, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TRAINER_OFFLINE", "1")  # the cached file must be used, never a download
    torch.manual_seed(0)
    with torch.device("meta"):  # names and shapes of torchvision's classifier, without its slow init
        classifier = getattr(torchvision.models, arch)(weights=None)
        shapes = {k: (v.shape, v.dtype) for k, v in classifier.state_dict().items()}
    state = {k: torch.randn(shape) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
             for k, (shape, dtype) in shapes.items()}
    cache = _cache_file(tmp_path, arch)
    cache.parent.mkdir(parents=True)
    torch.save(state, cache)
    backbone = BACKBONES.get(arch)(pretrained="imagenet")
    own = backbone.state_dict()
    assert len(backbone._aliases) == len(own)  # every backbone tensor has its torchvision name
    for tv_key, our_key in backbone._aliases.items():
        assert torch.equal(own[our_key], state[tv_key]), (tv_key, our_key)


def test_offline_without_the_file_names_the_url_and_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TRAINER_OFFLINE", "1")
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    with pytest.raises(WeightsError) as raised:
        BACKBONES.get("resnet18")(pretrained="imagenet")
    assert url in str(raised.value) and str(_cache_file(tmp_path, "resnet18")) in str(raised.value)
    assert not (tmp_path / "hub" / "checkpoints").exists() or not any((tmp_path / "hub" / "checkpoints").iterdir())


def test_cli_offline_without_the_file_is_exit_2(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TRAINER_OFFLINE", "1")
    recipe = Path(__file__).parents[2] / "recipes" / "classification" / "resnet18_shapes.yaml"
    result = cli("check", recipe, "model.architecture.backbone.pretrained=imagenet")
    assert result.exit_code == 2, result.output
    assert "resnet18-" in result.output and "put it at" in result.output and "Traceback" not in result.output


def test_imagenet_on_models_without_downloadable_weights_says_what_to_do():
    with pytest.raises(WeightsError, match="cspdarknet has no weights to download.*official YOLOX checkpoint"):
        BACKBONES.get("cspdarknet_nano")(pretrained="imagenet")
    with pytest.raises(WeightsError, match="pidnet has no weights to download.*PIDNet_S_ImageNet.pth.tar"):
        FULL_MODELS.get("pidnet")(num_classes=2, pretrained="imagenet")
