"""The one weight loader (`trainer.models.weights.load_weights`): containers, key maps, strict and
fine-tuning rules, the report, and errors that leave the model as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer.models.weights import WeightsError, load_weights


def net(num_classes: int = 3) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, num_classes, 1))
    torch.manual_seed(num_classes + 10)
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            tensor.uniform_(0.5, 1.5)
    return model


def same(model: nn.Module, state: dict) -> bool:
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items())


def test_trainer_checkpoint_prefers_ema_weights(tmp_path):
    source = net()
    ema = {f"module.{k}": torch.full_like(v, 7) for k, v in source.state_dict().items()}
    checkpoint = {"model": source.state_dict(), "ema": {**ema, "n_averaged": torch.tensor(3)}, "class_names": ["a"]}
    torch.save(checkpoint, tmp_path / "last.pt")
    target = net()
    report = load_weights(target, tmp_path / "last.pt")
    assert report.format == "trainer checkpoint, EMA weights" and not report.reinitialised and not report.left_out
    assert all(torch.equal(v, torch.full_like(v, 7)) for v in target.state_dict().values())
    load_weights(target, checkpoint, prefer_ema=False)
    assert same(target, source.state_dict())


@pytest.mark.parametrize("wrap", [lambda s: s, lambda s: {"state_dict": s}, lambda s: {"model": s},
                                  lambda s: {f"module.{k}": v for k, v in s.items()}])
def test_containers_and_ddp_keys(wrap, tmp_path):
    source = net()
    torch.save(wrap(source.state_dict()), tmp_path / "w.pth")
    target = net(3)
    target.load_state_dict({k: torch.zeros_like(v) for k, v in target.state_dict().items()})
    load_weights(target, tmp_path / "w.pth")
    assert same(target, source.state_dict())


def test_strict_lists_missing_unexpected_and_shapes_and_leaves_the_model(tmp_path):
    state = net(5).state_dict()
    state.pop("0.bias")
    state["extra.weight"] = torch.zeros(2)
    target = net(3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsError) as raised:
        load_weights(target, state, label="w.pth")
    message = str(raised.value)
    assert message.startswith("weights w.pth do not fit Sequential")
    assert "1 tensors missing (0.bias)" in message and "1 tensors unexpected (extra.weight)" in message
    assert "2.weight: file (5, 4, 1, 1) vs model (3, 4, 1, 1)" in message
    assert same(target, before)


def test_fine_tuning_reinitialises_class_predictions_and_reports(tmp_path):
    source = net(5).state_dict()
    source["old_head.weight"] = torch.zeros(1)
    target = net(3)
    initial = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_weights(target, source, strict=False, label="w.pth")
    assert set(report.reinitialised) == {"2.weight", "2.bias"} and report.left_out == ("old_head.weight",)
    assert torch.equal(target.state_dict()["2.weight"], initial["2.weight"])
    assert torch.equal(target.state_dict()["0.weight"], source["0.weight"])
    assert report.summary() == ("weights w.pth (state dict): loaded 6 of 8 tensors; re-initialised 2 (2.weight, "
                                "2.bias); left out 1 (old_head.weight)")


def test_batchnorm_counters_are_not_required(tmp_path):
    state = {k: v for k, v in net().state_dict().items() if not k.endswith("num_batches_tracked")}
    report = load_weights(net(), state)
    assert not report.reinitialised and len(report.loaded) == len(state)


def test_unreadable_sources_are_weights_errors(tmp_path):
    (tmp_path / "text.pth").write_text("not a torch file")
    with pytest.raises(WeightsError, match="text.pth: cannot read as a torch checkpoint"):
        load_weights(net(), tmp_path / "text.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="list.pth: holds a list, not a state dict"):
        load_weights(net(), tmp_path / "list.pth")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(WeightsError, match="empty.pth: no tensors in it"):
        load_weights(net(), tmp_path / "empty.pth")
