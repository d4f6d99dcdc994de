import numpy as np
import pytest
import torch

from src.data.datamodule import EMDataModule, fold_slices
from src.data.sources import IsbiSource, SyntheticSource
from src.utils.errors import UserError


def test_folds_are_five_blocks_of_six_consecutive_slices():
    blocks = [fold_slices(30, 5, k) for k in range(5)]
    assert blocks[4] == [24, 25, 26, 27, 28, 29]
    assert sorted(sum(blocks, [])) == list(range(30))
    with pytest.raises(UserError, match="data.fold=5 is out of range"):
        fold_slices(30, 5, 5)


@pytest.fixture(scope="module")
def isbi_module(isbi_dir, tmp_path_factory):
    source = IsbiSource(root=str(tmp_path_factory.mktemp("data") / "isbi2012"), mirror=str(isbi_dir), base_url=None)
    module = EMDataModule(source, fold=4, crop_size=128, batch_size=3, train_samples=12, num_workers=0)
    module.prepare_data()
    module.setup("fit")
    return module


def test_real_isbi_splits_and_shapes(isbi_module):
    assert isbi_module.splits["test"] == list(range(24, 30))
    assert isbi_module.splits["val"] == list(range(24, 30))
    assert isbi_module.splits["train"] == list(range(24))
    batch = next(iter(isbi_module.train_dataloader()))
    assert batch["image"].shape == (3, 1, 128, 128) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (3, 128, 128) and set(batch["label"].unique().tolist()) <= {0, 1}
    val = list(isbi_module.val_dataloader())
    assert len(val) == 6
    assert val[0]["image"].shape == (1, 1, 512, 512)
    assert [int(b["slice"]) for b in val] == list(range(24, 30))


def test_real_isbi_images_and_labels_stay_aligned(isbi_module, isbi_stack):
    # Membranes (label 0) are darker than interiors in every held-out slice and in every augmented crop.
    images, labels = isbi_stack
    for item in isbi_module.val_dataloader():
        index = int(item["slice"])
        assert np.array_equal(item["label"][0].numpy(), (labels[index] > 0).astype(np.int64))
        image = item["image"][0, 0]
        assert image[item["label"][0] == 1].mean() - image[item["label"][0] == 0].mean() > 0.5
    batch = next(iter(isbi_module.train_dataloader()))
    for image, label in zip(batch["image"][:, 0], batch["label"], strict=True):
        assert image[label == 1].mean() > image[label == 0].mean()


def _epoch_batches(seed: int, epochs: list[int], num_workers: int = 0) -> list[torch.Tensor]:
    """Every training image of each epoch in ``epochs``, taken in that order from one data module."""
    module = EMDataModule(
        SyntheticSource(num_slices=10, size=64),
        crop_size=32,
        batch_size=4,
        train_samples=8,
        num_workers=num_workers,
        seed=seed,
    )
    module.setup("fit")
    loader = module.train_dataloader()
    images = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)  # as Lightning does at each epoch start
        images.append(torch.cat([batch["image"] for batch in loader]))
    return images


def test_crops_depend_only_on_seed_and_epoch():
    first, second, third = _epoch_batches(1, [0, 1, 2])
    assert torch.equal(first, _epoch_batches(1, [0])[0])
    assert not torch.equal(first, _epoch_batches(2, [0])[0])
    assert not torch.equal(first, second)
    # Epoch 2 straight away (a run resumed there) sees what epoch 2 saw after epochs 0 and 1,
    (resumed,) = _epoch_batches(1, [2])
    assert torch.equal(resumed, third)
    # and two persistent workers hand out the same crops as the main process.
    assert all(
        torch.equal(a, b)
        for a, b in zip(_epoch_batches(1, [0, 1, 2], num_workers=2), [first, second, third], strict=True)
    )


def test_val_fold_is_kept_out_of_training():
    module = EMDataModule(SyntheticSource(num_slices=10, size=64), fold=4, val_fold=3, crop_size=32, num_workers=0)
    module.setup("fit")
    assert module.splits["test"] == [8, 9] and module.splits["val"] == [6, 7]
    assert module.splits["train"] == list(range(6))


def test_slices_smaller_than_the_crop_are_mirror_padded():
    module = EMDataModule(SyntheticSource(num_slices=5, size=40), crop_size=64, train_samples=4, num_workers=0)
    module.setup("fit")
    assert next(iter(module.train_dataloader()))["image"].shape == (4, 1, 64, 64)
