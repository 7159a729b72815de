"""The cosine schedule per step and, with `by_epoch`, per epoch (NetsPresso's cosine_no_sgdr)."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.engine.schedulers import cosine


def _rates(*, steps_per_epoch: int, epochs: int, **options) -> list[float]:
    """The lr each optimizer step of the whole schedule uses."""
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    scheduler = cosine(optimizer=optimizer, steps_per_epoch=steps_per_epoch, epochs=epochs, **options)
    rates = []
    for _ in range(steps_per_epoch * epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_by_epoch_holds_the_rate_for_an_epoch_and_follows_the_epoch_cosine():
    rates = _rates(steps_per_epoch=4, epochs=5, by_epoch=True)
    for epoch in range(5):
        expected = 0.1 * (1 + math.cos(math.pi * epoch / 5)) / 2  # NetsPresso: lr of epoch e, e = 0..E-1
        assert rates[epoch * 4:(epoch + 1) * 4] == pytest.approx([expected] * 4, rel=1e-9)


def test_per_step_cosine_reaches_the_floor_and_by_epoch_ends_above_it():
    per_step = _rates(steps_per_epoch=4, epochs=5, min_lr_ratio=0.1)
    per_epoch = _rates(steps_per_epoch=4, epochs=5, min_lr_ratio=0.1, by_epoch=True)
    assert per_step[0] == per_epoch[0] == pytest.approx(0.1)
    assert per_step[-1] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 19 / 20)) / 2)
    assert per_epoch[-1] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 4 / 5)) / 2)
    assert sum(per_epoch) > sum(per_step)  # the per-epoch schedule spends more learning rate


def test_by_epoch_after_a_warmup():
    rates = _rates(steps_per_epoch=4, epochs=3, warmup_epochs=1, warmup_start_factor=0.5, by_epoch=True)
    assert rates[:4] == pytest.approx([0.05, 0.0625, 0.075, 0.0875])
    assert rates[4:8] == pytest.approx([0.1] * 4)
    assert rates[8:] == pytest.approx([0.05] * 4)  # half-way through the 2 cosine epochs
