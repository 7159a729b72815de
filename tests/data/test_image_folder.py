import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from trainer.data.errors import DataError
from trainer.data.image_folder import ImageFolderDataset, read_rgb_image


def save(path, size=(12, 10), mode="RGB", value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    array = np.full((size[1], size[0], channels), value, dtype=np.uint8).squeeze()
    Image.fromarray(array, mode=None).convert(mode).save(path)
    return path


def test_classes_sorted_and_labels(tmp_path):
    save(tmp_path / "dog" / "a.png")
    save(tmp_path / "cat" / "b.jpg")
    save(tmp_path / "cat" / "c.png", mode="L")  # greyscale decodes as RGB
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = ImageFolderDataset(task="classification", split="train", root=str(tmp_path))
    assert data.class_names == ["cat", "dog"]
    assert len(data) == 3
    labels = sorted(data[i]["label"] for i in range(3))
    assert labels == [0, 0, 1]
    sample = data[0]
    assert isinstance(sample["image"], tv_tensors.Image)
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 10, 12)


def test_fixed_class_order_and_split_folder(tmp_path):
    save(tmp_path / "val" / "dog" / "a.png")
    data = ImageFolderDataset(task="classification", split="val", root=str(tmp_path), class_names=["dog", "cat"])
    assert data.class_names == ["dog", "cat"] and data[0]["label"] == 0
    with pytest.raises(DataError, match="not in class_names"):
        ImageFolderDataset(task="classification", split="val", root=str(tmp_path), class_names=["cat"])


def test_missing_root_and_empty(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ImageFolderDataset(task="classification", split="train", root=str(tmp_path / "nope"))
    with pytest.raises(DataError, match="no class folders"):
        ImageFolderDataset(task="classification", split="train", root=str(tmp_path))
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match="no images"):
        ImageFolderDataset(task="classification", split="train", root=str(tmp_path))


def test_corrupt_image_names_the_file(tmp_path):
    good = save(tmp_path / "cat" / "good.jpg", size=(64, 64))
    bad = tmp_path / "cat" / "truncated.jpg"
    bad.write_bytes(good.read_bytes()[:200])
    data = ImageFolderDataset(task="classification", split="train", root=str(tmp_path))
    index = [path.name for path, _ in data.samples].index("truncated.jpg")
    with pytest.raises(DataError, match="truncated.jpg"):
        data[index]


def test_read_rgb_image_formats(tmp_path):
    assert read_rgb_image(save(tmp_path / "x.bmp")).shape == (3, 10, 12)
    Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")  # 16-bit
    deep = read_rgb_image(tmp_path / "deep.png")
    assert deep.dtype == torch.uint8 and deep.shape == (3, 4, 5) and (deep == 255).all()
    with pytest.raises(DataError, match="not found"):
        read_rgb_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"hello")
    with pytest.raises(DataError, match="junk.png"):
        read_rgb_image(tmp_path / "junk.png")


def test_wrong_task(tmp_path):
    with pytest.raises(DataError, match="classification"):
        ImageFolderDataset(task="detection", split="train", root=str(tmp_path))
