"""Random training crops and whole held-out slices."""

import numpy as np
import torch

from src.data.augment import build_train_transform
from src.data.datasets import RandomCropDataset, SliceDataset


def _stack():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 40, 48)).astype(np.float32)
    labels = (rng.random((3, 40, 48)) > 0.3).astype(np.uint8)
    return images, labels


def test_a_crop_is_a_window_of_its_slice_with_the_label_beside_it():
    images, labels = _stack()
    dataset = RandomCropDataset(images, labels, build_train_transform(16, (40, 48), flip_rotate_p=0.0), length=7)
    assert len(dataset) == 7
    for index in range(7):
        item = dataset[index]
        image, label = item["image"][0].numpy(), item["label"].numpy()
        assert image.shape == label.shape == (16, 16)
        source = index % 3  # slices are drawn in turn
        windows = np.lib.stride_tricks.sliding_window_view(images[source], (16, 16))
        found = np.argwhere(np.isclose(windows, image, atol=1e-5).all(axis=(2, 3)))
        assert len(found) == 1
        top, left = found[0]
        assert np.array_equal(label, labels[source, top : top + 16, left : left + 16])


def test_an_item_depends_only_on_its_seed():
    images, labels = _stack()
    dataset = RandomCropDataset(images, labels, build_train_transform(16, (40, 48)), length=4)
    assert torch.equal(dataset[(2, 99)]["image"], dataset[(2, 99)]["image"])
    assert not torch.equal(dataset[(2, 99)]["image"], dataset[(2, 100)]["image"])


def test_whole_slices_keep_their_index_in_the_stack():
    images, labels = _stack()
    dataset = SliceDataset(images[[0, 2]], labels[[0, 2]], [10, 12])
    assert len(dataset) == 2
    item = dataset[1]
    assert item["slice"].item() == 12 and item["image"].shape == (1, 40, 48)
    assert torch.equal(item["label"], torch.from_numpy(labels[2]).long())
    assert "label" not in SliceDataset(images, None, [0, 1, 2])[0]


def test_class_balanced_crops_show_a_rare_class_as_often_as_the_others():
    from src.data.augment import build_train_transform
    from src.data.datasets import RandomCropDataset

    labels = np.zeros((2, 256, 256), np.uint8)
    labels[:, 128:, :] = 1
    labels[:, 200:204, 30:34] = 2  # 16 pixels of 65536: a synapse-like rarity
    images = np.random.default_rng(0).normal(size=labels.shape).astype(np.float32)
    transform = build_train_transform(32, (256, 256), flip_rotate_p=0.0)

    def share_with_rare(balance: float) -> float:
        dataset = RandomCropDataset(images, labels, transform, 300, class_balance=balance, crop_size=32)
        return np.mean([(dataset[(i, i)]["label"] == 2).any().item() for i in range(300)])

    assert share_with_rare(0.0) < 0.05
    assert 0.2 < share_with_rare(1.0) < 0.5  # one class in three is drawn, and its crop is centred on it
