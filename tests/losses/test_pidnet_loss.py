"""PIDNet loss: worked values of the official formula, edge cases, and the boundary target."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.losses.boundary_target import boundary_target, label_edges
from trainer.losses.pidnet import PIDNetLoss, ohem_cross_entropy, pidnet_loss, weighted_bce
from trainer.registry import LOSSES


def logits_for(prob_true: list[float], labels: list[int]) -> torch.Tensor:
    """(1, 2, 1, N) two-class logits whose softmax gives ``prob_true`` on the label's class."""
    p = torch.tensor(prob_true, dtype=torch.float64)
    y = torch.tensor(labels)
    y = torch.where(y == 255, 0, y)
    log_p, log_q = p.log(), (1 - p).log()
    class0 = torch.where(y == 0, log_p, log_q)
    class1 = torch.where(y == 0, log_q, log_p)
    return torch.stack([class0, class1])[None, :, None, :].float()


# Eight valid pixels with known true-class probabilities, plus one ignored (would be the hardest).
PROBS = [0.5, 0.1, 0.97, 0.3, 0.99, 0.92, 0.7, 0.95, 0.01]
LABELS = [0, 1, 0, 1, 1, 0, 0, 1, 255]


@pytest.mark.parametrize(
    ("min_kept", "kept"),
    [
        (1, [0.1, 0.3, 0.5, 0.7]),  # p[1] = 0.3 -> threshold max(0.9, 0.3) = 0.9
        (5, [0.1, 0.3, 0.5, 0.7, 0.92]),  # p[5] = 0.95 -> keep p < 0.95
        (100, [0.1, 0.3, 0.5, 0.7, 0.92, 0.95, 0.97]),  # index n_valid - 1: p = 0.99 itself is dropped
    ],
)
def test_ohem_keeps_the_expected_pixels(min_kept: int, kept: list[float]) -> None:
    logits = logits_for(PROBS, LABELS)
    labels = torch.tensor(LABELS)[None, None]
    loss = ohem_cross_entropy(logits, labels, threshold=0.9, min_kept=min_kept)
    expected = sum(-math.log(p) for p in kept) / len(kept)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ohem_class_weights_mean_over_kept_count() -> None:
    logits = logits_for(PROBS, LABELS)
    labels = torch.tensor(LABELS)[None, None]
    weights = torch.tensor([2.0, 0.5])
    loss = ohem_cross_entropy(logits, labels, threshold=0.9, min_kept=1, class_weights=weights)
    kept = [(p, y) for p, y in zip(PROBS, LABELS) if y != 255 and p < 0.9]
    expected = sum(-weights[y].item() * math.log(p) for p, y in kept) / len(kept)  # official .mean()
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ohem_all_tied_or_all_ignored_is_zero_with_graph() -> None:
    logits = torch.tensor([[10.0, -10.0]] * 4).T.reshape(1, 2, 1, 4).requires_grad_()
    for labels in (torch.zeros(1, 1, 4, dtype=torch.long), torch.full((1, 1, 4), 255)):
        loss = ohem_cross_entropy(logits, labels)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()


def test_weighted_bce_class_balance() -> None:
    target = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])  # 2 positives of 8
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2, 1.5, -0.7, 0.1]).reshape(1, 1, 2, 4)
    n, n_pos = 8, 2
    terms = []
    for x, t in zip(logits.flatten().tolist(), target.flatten().tolist()):
        weight = (n - n_pos) / n if t == 1 else n_pos / n
        bce = -(t * math.log(1 / (1 + math.exp(-x))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-x))))
        terms.append(weight * bce)
    assert weighted_bce(logits, target).item() == pytest.approx(sum(terms) / n, rel=1e-5)
    no_edge = weighted_bce(logits.requires_grad_(), torch.zeros(1, 2, 4))
    assert no_edge.item() == 0.0 and no_edge.requires_grad


def test_boundary_aware_mask_keeps_only_confident_boundary_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4)
    labels = torch.randint(0, 3, (1, 4, 4))
    boundary = torch.full((1, 1, 4, 4), -5.0)
    boundary[0, 0, 1, :3] = 3.0  # sigmoid 0.95 > 0.8
    boundary[0, 0, 2, 0] = 1.0  # sigmoid 0.73 < 0.8: not kept
    parts = pidnet_loss(logits, logits, boundary, labels, min_kept=1)
    masked = torch.full_like(labels, 255)
    masked[0, 1, :3] = labels[0, 1, :3]
    assert parts["boundary_aware"].item() == pytest.approx(ohem_cross_entropy(logits, masked, min_kept=1).item())
    none = pidnet_loss(logits, logits, torch.full((1, 1, 4, 4), -5.0), labels)["boundary_aware"]
    assert none.item() == 0.0


def test_boundary_loss_nonzero_on_edges_and_trains_d_branch() -> None:
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[:, :, 16:] = 1
    logits_p = torch.randn(2, 2, 4, 4, requires_grad=True)
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    boundary = torch.zeros(2, 1, 4, 4, requires_grad=True)
    parts = PIDNetLoss(min_kept=16)(logits_p=logits_p, logits=logits, boundary_logits=boundary, labels=labels)
    assert set(parts) == {"semantic", "boundary", "boundary_aware"}
    assert parts["boundary"].item() > 0
    sum(parts.values()).backward()
    assert boundary.grad is not None and boundary.grad.abs().sum() > 0


def test_all_ignored_labels_give_finite_zero_with_graph() -> None:
    logits_p = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    boundary = torch.full((2, 1, 4, 4), 4.0, requires_grad=True)
    labels = torch.full((2, 32, 32), 255)
    for ohem in (True, False):
        parts = PIDNetLoss(ohem=ohem)(logits_p=logits_p, logits=logits, boundary_logits=boundary, labels=labels)
        total = sum(parts.values())
        assert torch.isfinite(total) and total.item() == 0.0 and total.requires_grad
        total.backward()


def reference_pidnet(logits_p, logits, boundary, labels, *, min_kept, weights=None, ohem=True):
    """The official FullModel + OhemCrossEntropy + BondaryLoss flow, written out literally."""
    size = labels.shape[-2:]
    outs = [F.interpolate(o, size=size, mode="bilinear", align_corners=True) for o in (logits_p, logits, boundary)]
    ce_none = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=255, reduction="none")
    ce_mean = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=255)

    def ohem_loss(score, target):
        pred = F.softmax(score, dim=1)
        pixel_losses = ce_none(score, target).contiguous().view(-1)
        mask = target.contiguous().view(-1) != 255
        tmp = target.clone()
        tmp[tmp == 255] = 0
        pred = pred.gather(1, tmp.unsqueeze(1))
        pred, ind = pred.contiguous().view(-1)[mask].contiguous().sort()
        threshold = max(pred[min(min_kept, pred.numel() - 1)], 0.9)
        return pixel_losses[mask][ind][pred < threshold].mean()

    if ohem:
        loss_s = 0.4 * ce_none(outs[0], labels) + 1.0 * ohem_loss(outs[1], labels)  # broadcast (B, H, W)
    else:
        loss_s = 0.4 * ce_mean(outs[0], labels) + 1.0 * ce_mean(outs[1], labels)
    edge = boundary_target(labels)
    n, pos = edge.numel(), edge.sum()
    weight = torch.where(edge == 1, (n - pos) / n, pos / n)
    loss_b = 20.0 * F.binary_cross_entropy_with_logits(outs[2][:, 0], edge, weight)
    bd_label = torch.where(torch.sigmoid(outs[2][:, 0]) > 0.8, labels, torch.full_like(labels, 255))
    loss_sb = ohem_loss(outs[1], bd_label) if ohem else ce_mean(outs[1], bd_label)
    return (loss_s + loss_b + loss_sb).mean(), loss_s.mean(), loss_b, loss_sb


@pytest.mark.parametrize("ohem", [True, False])
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 1.5]])
def test_matches_the_official_formulation(ohem: bool, weights: list[float] | None) -> None:
    torch.manual_seed(1)
    logits_p, logits = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    boundary = torch.randn(2, 1, 8, 8) * 3
    labels = torch.randint(0, 4, (2, 8, 8)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    labels[0, :5] = 255
    w = None if weights is None else torch.tensor(weights)
    total, semantic, bd, sb = reference_pidnet(logits_p, logits, boundary, labels, min_kept=300, weights=w, ohem=ohem)
    parts = PIDNetLoss(min_kept=300, class_weights=weights, ohem=ohem)(
        logits_p=logits_p, logits=logits, boundary_logits=boundary, labels=labels
    )
    assert parts["semantic"].item() == pytest.approx(semantic.item(), rel=1e-5)
    assert parts["boundary"].item() == pytest.approx(bd.item(), rel=1e-5)
    assert parts["boundary_aware"].item() == pytest.approx(sb.item(), rel=1e-5)
    assert sum(parts.values()).item() == pytest.approx(total.item(), rel=1e-5)


def test_aux_mean_over_valid_option() -> None:
    torch.manual_seed(2)
    logits_p, logits, boundary = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8)
    labels = torch.randint(0, 3, (1, 8, 8))
    labels[0, :4] = 255
    zero_main = {"logits": logits, "boundary_logits": boundary, "labels": labels, "logits_p": logits_p}
    quirk = PIDNetLoss(balance_weights=[1.0, 0.0])(**zero_main)["semantic"]
    valid = PIDNetLoss(balance_weights=[1.0, 0.0], aux_mean_over_valid=True)(**zero_main)["semantic"]
    ce = F.cross_entropy(logits_p, labels, ignore_index=255)
    assert valid.item() == pytest.approx(ce.item(), rel=1e-5)
    assert quirk.item() == pytest.approx(ce.item() * 32 / 64, rel=1e-5)  # half the pixels ignored


def test_registration_and_option_errors() -> None:
    assert LOSSES.get("pidnet_loss") is PIDNetLoss
    assert LOSSES.meta("pidnet_loss")["heads"] == {"segmentation": ("pidnet",)}
    with pytest.raises(ValueError, match="balance_weights"):
        PIDNetLoss(balance_weights=[1.0])
    loss = PIDNetLoss(class_weights=[1.0, 1.0])
    x = torch.randn(1, 3, 2, 2)
    with pytest.raises(ValueError, match="class_weights"):
        loss(logits_p=x, logits=x, boundary_logits=x[:, :1], labels=torch.zeros(1, 2, 2, dtype=torch.long))


# ----- boundary target -------------------------------------------------------------------------


def test_two_regions_give_a_band_of_four_rows() -> None:
    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[:, 6:] = 3
    edge = boundary_target(labels)
    expected = torch.zeros(12, 12)
    expected[4:8] = 1  # Canny marks row 5; the 4x4 dilation (anchor 2) covers rows 4..7
    assert torch.equal(edge[0], expected)
    assert edge.dtype == torch.float32


def test_uniform_label_has_no_edge() -> None:
    assert boundary_target(torch.full((2, 9, 7), 4)).sum() == 0
    assert boundary_target(torch.full((1, 5, 5), 255)).sum() == 0


def test_ignore_is_an_id_like_the_official_code() -> None:
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[:, 8:] = 255
    edge = boundary_target(labels, dilation=1)
    assert edge[0, 7].sum() == 16 and edge.sum() == 16
    assert boundary_target(labels, ignore_is_edge=False).sum() == 0


def test_border_drop() -> None:
    labels = torch.zeros(1, 30, 30, dtype=torch.long)
    labels[:, :, 3:] = 1  # vertical edge at column 2, inside the 6 px border
    labels[:, 15:] = 2  # horizontal edge at row 14
    edge = boundary_target(labels, border=6, dilation=1)
    assert edge[0, :, 2].sum() == 0
    assert edge[0, 14, 6:24].sum() == 18 and edge.sum() == 18


# cv2.Canny(LABEL.astype(np.uint8), 0.1, 0.2) > 0, computed with OpenCV 5.0.0.
LABEL = [
    [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 1],
    [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 1],
    [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 1],
    [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
    [0, 255, 255, 0, 0, 0, 1, 1, 1, 1, 1, 1],
    [0, 255, 255, 0, 0, 0, 1, 1, 1, 1, 1, 1],
    [0, 255, 255, 0, 0, 0, 0, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
]
CANNY = [
    [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0],
    [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0],
    [0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0],
    [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
]


def test_label_edges_equal_opencv_canny() -> None:
    edges = label_edges(torch.tensor(LABEL)[None])
    assert edges[0].int().tolist() == CANNY


def test_matches_cv2_on_random_labels() -> None:
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    gen = torch.Generator().manual_seed(0)
    for trial in range(10):
        labels = F.interpolate(torch.rand(2, 5, 5, 6, generator=gen), size=(40, 48), mode="bilinear").argmax(1)
        labels[labels == 4] = 255
        ours = boundary_target(labels, border=6 if trial % 2 else 0)
        for b in range(2):
            edge = cv2.Canny(labels[b].numpy().astype(np.uint8), 0.1, 0.2)
            if trial % 2:
                edge = np.pad(edge[6:-6, 6:-6], 6)
            ref = (cv2.dilate(edge, np.ones((4, 4), np.uint8)) > 50).astype(np.float32)
            assert np.array_equal(ours[b].numpy(), ref)
