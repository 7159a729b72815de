"""The loss module: weights (number or per part), exclude, distinct names, input remapping."""

from __future__ import annotations

import pytest
import torch

from trainer.components import load_builtin_components
from trainer.losses.module import build_loss_module


@pytest.fixture(autouse=True)
def _components():
    load_builtin_components()


def _context():
    torch.manual_seed(0)
    return {"logits": torch.randn(6, 4, requires_grad=True), "aux_logits": torch.randn(6, 4),
            "labels": torch.tensor([0, 1, 2, 3, 0, 1]), "epoch": 0}


def test_weighted_sum_and_part_names():
    module = build_loss_module([{"criterion": "cross_entropy", "weight": None},
                                {"criterion": "focal_loss", "weight": 2.0}])
    context = _context()
    total, parts = module(context)
    assert set(parts) == {"cross_entropy/ce", "focal_loss/focal"}
    torch.testing.assert_close(total, parts["cross_entropy/ce"] + 2.0 * parts["focal_loss/focal"])
    total.backward()
    assert context["logits"].grad is not None


def test_duplicates_get_distinct_names_and_remapped_inputs():
    module = build_loss_module([
        {"criterion": "cross_entropy"},
        {"criterion": "cross_entropy", "inputs": {"logits": "aux_logits"}, "weight": 0.4},
        {"criterion": "cross_entropy", "name": "smooth", "label_smoothing": 0.1},
    ])
    context = _context()
    total, parts = module(context)
    assert set(parts) == {"cross_entropy/ce", "cross_entropy__2/ce", "smooth/ce"}
    aux = torch.nn.functional.cross_entropy(context["aux_logits"], context["labels"])
    torch.testing.assert_close(parts["cross_entropy__2/ce"], aux)
    torch.testing.assert_close(total, parts["cross_entropy/ce"] + 0.4 * aux + parts["smooth/ce"])


def test_exclude_logs_without_optimising_and_per_part_weights():
    module = build_loss_module([{"criterion": "cross_entropy", "weight": {"ce": 3.0}},
                                {"criterion": "focal_loss", "exclude": ["focal"]}])
    total, parts = module(_context())
    assert "focal_loss/focal" in parts
    torch.testing.assert_close(total, 3.0 * parts["cross_entropy/ce"])


def test_missing_inputs_are_named():
    module = build_loss_module([{"criterion": "cross_entropy", "inputs": {"logits": "nothing_here"}}])
    problems = module.missing_inputs({"logits", "labels", "images", "epoch"})
    assert len(problems) == 1 and "nothing_here" in problems[0]
