import numpy as np
import pytest
import tifffile
import torch

from src.data.datamodule import EMDataModule, fold_slices
from src.data.sources import IsbiSource, SyntheticSource, TiffSource
from src.data.synthetic import synthetic_stack
from src.utils.errors import UserError
from tests.conftest import write_volume_copies


def test_folds_are_five_blocks_of_six_consecutive_slices():
    blocks = [fold_slices(30, 5, k) for k in range(5)]
    assert blocks[4] == [24, 25, 26, 27, 28, 29]
    assert sorted(sum(blocks, [])) == list(range(30))
    with pytest.raises(UserError, match="data.fold=5 is out of range"):
        fold_slices(30, 5, 5)
    with pytest.raises(UserError, match="1 slice along y, fewer than data.num_folds=5: give a stack of more slices"):
        fold_slices(1, 5, 0, "y")


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


def test_isbi_read_lazily_holds_out_the_same_slices_as_in_memory(isbi_module, isbi_dir, tmp_path):
    source = IsbiSource(root=str(tmp_path / "isbi2012"), mirror=str(isbi_dir), base_url=None)
    lazy = EMDataModule(source, fold=4, crop_size=128, batch_size=3, train_samples=12, loading="lazy")
    lazy.prepare_data()
    lazy.setup("fit")
    assert lazy.lazy and not isbi_module.lazy and lazy.splits == isbi_module.splits
    assert len(lazy.pieces) == 24 and {p.z for p in lazy.pieces} == set(range(24))
    assert lazy.statistics.sampled.tolist() == [512 * 512] * 30  # a slice no larger than the sample is read whole
    in_memory, read_lazily = isbi_module.held_out("test"), lazy.held_out("test")
    for a, b in zip(in_memory[0], read_lazily[0], strict=True):
        assert int(a["slice"]) == int(b["slice"]) and torch.equal(a["label"], b["label"])
        assert (a["image"] - b["image"]).abs().max() < 1e-5
    assert np.array_equal(in_memory[1], read_lazily[1]) and np.array_equal(in_memory[2], read_lazily[2])
    batch = next(iter(lazy.train_dataloader()))
    assert batch["image"].shape == (3, 1, 128, 128) and set(batch["label"].unique().tolist()) <= {0, 1}
    assert abs(float(batch["image"].mean())) < 0.5 and 0.6 < float(batch["image"].std()) < 1.5
    assert lazy.state_dict()["statistics"]["sampled_pixels"][0] == 512 * 512
    described = lazy.describe()
    assert described["loading"] == "lazy" and described["volume"]["shape"] == [30, 512, 512]
    assert described["held_out_boxes"]["test"][0] == [24, 0, 512, 0, 512]


def _written_source(tmp_path):
    images, labels = synthetic_stack(num_slices=5, size=96, num_cells=12, seed=4)
    tifffile.imwrite(tmp_path / "i.tif", images)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    return TiffSource(str(tmp_path / "i.tif"), str(tmp_path / "l.tif"))


def test_auto_loading_reads_lazily_above_the_size_and_bad_choices_are_refused(tmp_path):
    source = _written_source(tmp_path)
    small = EMDataModule(source, crop_size=32)
    small.setup("fit")
    large = EMDataModule(source, crop_size=32, lazy_above_gib=1e-6)
    large.setup("fit")
    assert not small.lazy and large.lazy
    with pytest.raises(UserError, match="this data source is generated in memory"):
        EMDataModule(SyntheticSource(num_slices=5, size=32), loading="lazy").setup("fit")
    with pytest.raises(UserError, match="fold_axis=y cuts bands of slices; it needs data.loading=lazy"):
        EMDataModule(source, fold_axis="y", loading="memory").setup("fit")
    weights = {"w0": 10.0, "sigma": 5.0}
    with pytest.raises(UserError, match="data.weight_map is computed on whole slices"):
        EMDataModule(source, loading="lazy", weight_map=weights)  # refused with the settings, before any read
    auto = EMDataModule(source, crop_size=32, lazy_above_gib=1e-6, weight_map=weights)  # lazy once the size is known
    with pytest.raises(UserError, match="data.weight_map is computed on whole slices"):
        auto.setup("fit")
    with pytest.raises(UserError, match="data.loading=disk must be one of auto, memory, lazy"):
        EMDataModule(source, loading="disk")
    with pytest.raises(UserError, match="data.lazy_above_gib=-1 must be 0"):
        EMDataModule(source, lazy_above_gib=-1)  # taken as 0 (every stack lazy) without a word before
    with pytest.raises(UserError, match="data.augmentation.blur_p=1.5 is a probability"):
        EMDataModule(source, augmentation={"blur_p": 1.5})  # refused with the settings, before any read


def test_folds_along_y_keep_training_crops_out_of_the_held_out_band(tmp_path):
    module = EMDataModule(_written_source(tmp_path), loading="lazy", fold_axis="y", fold=1, val_fold=3,
                          crop_size=16, eval_box=32, train_samples=64)  # fmt: skip
    module.setup("fit")
    held = {"test": (19, 38), "val": (58, 77)}  # rows of fold 1 and fold 3 of 96
    assert module.splits["test"] == list(range(*held["test"]))
    dataset = module.train_dataloader().dataset
    for index in range(64):
        box = dataset.crop_box(index, index)
        for low, high in held.values():
            assert box.y[1] <= low or box.y[0] >= high
    for split, (low, high) in held.items():
        boxes = module.boxes[split]
        assert len(boxes) == 8 and all(low <= b.y[0] and b.y[1] <= high for b in boxes)
        assert module.subset(split)[0]["image"].shape == (1, high - low, 32)


def test_lazy_batches_are_the_same_from_tiff_hdf5_and_zarr_copies(tmp_path):
    images, labels = synthetic_stack(num_slices=5, size=96, num_cells=12, seed=4)
    image_copies = write_volume_copies(images, tmp_path / "i")
    label_copies = write_volume_copies(labels, tmp_path / "l")
    batches = []
    for kind in ("tiff", "hdf5", "zarr3"):
        (image_path, image_key), (label_path, label_key) = image_copies[kind], label_copies[kind]
        source = TiffSource(str(image_path), str(label_path), image_key, label_key)
        module = EMDataModule(source, loading="lazy", crop_size=48, batch_size=4, train_samples=8, seed=3,
                              augmentation={"flip_rotate_p": 1.0, "elastic_p": 1.0})  # fmt: skip
        module.setup("fit")
        batches.append((next(iter(module.train_dataloader())), next(iter(module.val_dataloader()))))
    for train, val in batches[1:]:
        for key in ("image", "label"):
            assert torch.equal(train[key], batches[0][0][key]) and torch.equal(val[key], batches[0][1][key])
