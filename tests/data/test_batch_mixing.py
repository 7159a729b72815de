import pytest
import torch

from trainer.data.batch_mixing import build_batch_mixing
from trainer.data.errors import DataError


def batch():
    return torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8), torch.tensor([0, 1, 2, 3, 4, 0])


def test_none_when_off():
    assert build_batch_mixing(num_classes=5) is None


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.2, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_probabilities(mixup, cutmix):
    mix = build_batch_mixing(num_classes=5, mixup_alpha=mixup, cutmix_alpha=cutmix)
    torch.manual_seed(0)
    images, labels = batch()
    for _ in range(3):
        out, probs = mix(images, labels)
        assert out.dtype == torch.uint8 and out.shape == images.shape
        assert probs.shape == (6, 5) and probs.dtype == torch.float32
        torch.testing.assert_close(probs.sum(1), torch.ones(6))
    out, probs = mix(images.float() / 255, labels)
    assert out.dtype == torch.float32


def test_prob_zero_gives_one_hot():
    mix = build_batch_mixing(num_classes=5, mixup_alpha=1.0, prob=0.0)
    images, labels = batch()
    out, probs = mix(images, labels)
    assert torch.equal(out, images)
    assert torch.equal(probs.argmax(1), labels) and (probs.max(1).values == 1).all()


def test_bad_options():
    with pytest.raises(DataError):
        build_batch_mixing(num_classes=5, mixup_alpha=-1.0)
    with pytest.raises(DataError):
        build_batch_mixing(num_classes=5, mixup_alpha=1.0, prob=1.5)
