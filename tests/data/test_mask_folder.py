import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from trainer.data.errors import DataError
from trainer.data.mask_folder import MaskFolderDataset

CLASSES = ["background", "road", "car"]


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make(root, masks):
    for stem, mask in masks.items():
        height, width = mask.shape[:2]
        write(root / "images" / "train" / f"{stem}.jpg", np.full((height, width, 3), 128, dtype=np.uint8))
        write(root / "masks" / "train" / f"{stem}.png", mask)


def load(root, **options):
    return MaskFolderDataset(task="segmentation", split="train", root=str(root), class_names=CLASSES, **options)


def index_mask(value=1, shape=(6, 8)):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[2:4, 3:6] = value
    mask[0, 0] = 255  # ignore
    return mask


def test_pairs_by_stem_and_sample(tmp_path):
    make(tmp_path, {"b": index_mask(1), "a": index_mask(2, shape=(5, 7))})
    data = load(tmp_path)
    assert [(image.stem, mask.stem) for image, mask in data.pairs] == [("a", "a"), ("b", "b")]
    sample = data[0]
    assert isinstance(sample["image"], tv_tensors.Image) and sample["image"].shape == (3, 5, 7)
    assert isinstance(sample["mask"], tv_tensors.Mask) and sample["mask"].dtype == torch.int64
    assert set(sample["mask"].unique().tolist()) == {0, 2, 255}
    assert sample["image_id"] == 0


def test_missing_mask_names_the_file(tmp_path):
    make(tmp_path, {"a": index_mask()})
    write(tmp_path / "images" / "train" / "lonely.jpg", np.zeros((6, 8, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"lonely\.jpg has no mask"):
        load(tmp_path)


def test_mask_without_image(tmp_path):
    make(tmp_path, {"a": index_mask()})
    write(tmp_path / "masks" / "train" / "orphan.png", index_mask())
    with pytest.raises(DataError, match=r"orphan\.png has no image"):
        load(tmp_path)


def test_out_of_range_class_names_the_file(tmp_path):
    make(tmp_path, {"a": index_mask(7)})
    with pytest.raises(DataError, match=r"a\.png: class id\(s\) \[7\]"):
        load(tmp_path)[0]


def test_size_mismatch(tmp_path):
    make(tmp_path, {"a": index_mask()})
    write(tmp_path / "masks" / "train" / "a.png", index_mask(shape=(6, 9)))
    with pytest.raises(DataError, match=r"a\.png: mask is 9x6"):
        load(tmp_path)[0]


def test_palette_masks(tmp_path):
    palette = [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
    rgb = np.zeros((6, 8, 3), dtype=np.uint8)
    rgb[1:3, 1:3] = palette[1]
    rgb[4:, 4:] = palette[2]
    make(tmp_path, {"a": rgb})
    mask = load(tmp_path, palette=palette)[0]["mask"]
    assert mask[1, 1] == 1 and mask[5, 5] == 2 and mask[0, 0] == 0
    with pytest.raises(DataError, match="colour mask but no palette"):
        load(tmp_path)[0]
    rgb[0, 0] = [1, 2, 3]
    write(tmp_path / "masks" / "train" / "a.png", rgb)
    with pytest.raises(DataError, match=r"colour \[1, 2, 3\].*not in the palette"):
        load(tmp_path, palette=palette)[0]
