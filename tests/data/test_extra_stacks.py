import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import Trainer
from lightning.pytorch.trainer.states import TrainerFn

from src.data.datamodule import EMDataModule
from src.data.extra_stacks import CropMix, check_extra, crops_per_epoch, load_extra, rescale_slices
from src.data.labels import ClassMap
from src.data.sources import PublishedSource, SyntheticSource, TiffSource
from src.utils.errors import UserError
from tests.conftest import compose_config

BINARY = {"membrane": [0], "interior": [255]}


def _extra(source=None, share=0.5, scale=1.0, classes=None):
    return {"source": source, "classes": classes or BINARY, "ignore": None, "scale": scale, "share": share}


def test_crops_per_epoch_split_the_epoch_by_share_with_at_least_one_each():
    assert crops_per_epoch(96, 0.5) == (48, 48)
    assert crops_per_epoch(96, 0.0) == (96, 0)
    assert crops_per_epoch(96, 0.25) == (72, 24)
    assert crops_per_epoch(4, 0.01) == (3, 1)
    assert crops_per_epoch(4, 0.99) == (1, 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (_extra(SyntheticSource(), share=1.0), "data.extra.share=1.0"),
        (_extra(None), "needs data.extra.source"),
        (_extra(SyntheticSource(), classes={"interior": [255], "membrane": [0]}), "same names in the same order"),
        (_extra(SyntheticSource(), scale=0.0), "data.extra.scale=0.0"),
    ],
)
def test_bad_extra_settings_are_refused_before_any_data_is_read(extra, message):
    with pytest.raises(UserError, match=message):
        check_extra(extra, ["membrane", "interior"], 96)
    with pytest.raises(UserError, match=message):
        EMDataModule(SyntheticSource(num_slices=5, size=32), extra=extra)


def test_rescaled_slices_keep_their_class_ids_and_the_image_follows():
    labels = np.zeros((2, 20, 30), np.uint8)
    labels[:, 5:15, 10:20] = 1
    images = labels.astype(np.uint8) * 200
    big_images, big_labels = rescale_slices(images, labels, 1.5)
    assert big_images.shape == big_labels.shape == (2, 30, 45)
    assert set(np.unique(big_labels).tolist()) == {0, 1}
    assert big_labels[0].sum() == pytest.approx(labels[0].sum() * 1.5**2, rel=0.05)  # the square grew as the slice
    assert np.median(big_images[big_labels == 1]) == 200 and np.median(big_images[big_labels == 0]) == 0
    same = rescale_slices(images, labels, 1.0)
    assert same[0] is images and same[1] is labels


def test_an_extra_stack_is_loaded_as_the_main_classes_at_the_main_pixel_size():
    source = SyntheticSource(num_slices=3, size=40, seed=5)
    raw_images, raw_labels = source.load()
    main = ClassMap(BINARY, None, "membrane", "classes", 2)
    images, labels, weights = load_extra(_extra(source, scale=2.0), main)
    assert images.shape == labels.shape == (3, 80, 80) and weights is None
    assert np.allclose(images.mean(axis=(1, 2)), 0, atol=1e-4) and np.allclose(images.std(axis=(1, 2)), 1, atol=1e-3)
    # Nearest-neighbour doubling: every second pixel is the raw label, as class ids (membrane 0, interior 1).
    assert np.array_equal(labels[:, ::2, ::2], (raw_labels > 0).astype(np.uint8))
    widened = load_extra(_extra(source, scale=2.0), main, membrane_widening=1)[1]
    assert (widened == 0).sum() > (labels == 0).sum()
    weighted = load_extra(_extra(source), main, weight_map={"w0": 10.0, "sigma": 5.0, "class_balance": True})[2]
    assert weighted.shape == raw_labels.shape and weighted.max() > weighted.min()


def test_vnc2013_as_membranes_gives_the_published_membrane_share(vnc_dir, tmp_path):
    # SOURCE.md: the four membrane orientations and junctions are 17.2% of the labelled pixels (2.6+2.9+3.4+3.2+5.1).
    cfg = compose_config("train", ["data/extra=vnc2013_membranes", f"paths.data_dir={tmp_path}"])
    extra = dict(instantiate(cfg.data.extra))
    assert isinstance(extra["source"], PublishedSource) and extra["source"].root == tmp_path / "vnc2013"
    extra["source"].mirror = str(vnc_dir)  # the config's default mirror is ../shared; the tests' may be elsewhere
    extra["source"].prepare()
    main = ClassMap(BINARY, None, "membrane", "classes", 2)
    images, labels, _ = load_extra(extra, main)
    assert images.shape == (14, 1178, 1178)  # 1024 px of 4.6 nm at ISBI 2012's 4.0 nm
    assert (labels == 0).mean() == pytest.approx(0.172, abs=0.003)
    assert images[labels == 0].mean() < images[labels == 1].mean() - 0.5  # membranes darker, as in ISBI


def test_crop_mix_hands_each_key_to_its_dataset_with_its_seed():
    class Keyed(torch.utils.data.Dataset):
        def __init__(self, name, length):
            self.name, self.length = name, length

        def __len__(self):
            return self.length

        def __getitem__(self, key):
            return (self.name, key)

    mix = CropMix(Keyed("first", 3), Keyed("second", 2))
    assert len(mix) == 5
    assert mix[(2, 77)] == ("first", (2, 77))
    assert mix[(3, 78)] == ("second", (0, 78))
    assert mix[4] == ("second", (1, 4))


def test_training_crops_come_from_both_stacks_and_evaluation_reads_only_the_main_one():
    main = SyntheticSource(num_slices=10, size=64, seed=0)
    other = SyntheticSource(num_slices=2, size=48, seed=9)
    module = EMDataModule(main, crop_size=32, batch_size=4, train_samples=8, num_workers=0, extra=_extra(other, 0.25))
    module.prepare_data()
    module.setup("fit")
    dataset = module.train_dataloader().dataset
    assert isinstance(dataset, CropMix) and (len(dataset.first), len(dataset.second)) == (6, 2)
    assert np.array_equal(dataset.second.labels, (other.load()[1] > 0).astype(np.uint8))
    assert dataset.first.labels.shape == (8, 64, 64)
    assert module.describe()["extra"]["crops_per_epoch"] == {"main": 6, "extra": 2}
    batch = [dataset[(i, i)] for i in range(8)]
    assert all(item["image"].shape == (1, 32, 32) for item in batch)
    assert module.splits["test"] == [8, 9] and len(module.subset("test")) == 2  # held out from the main stack only

    class Unreachable(SyntheticSource):
        def prepare(self):
            raise AssertionError("evaluation prepared the extra stack")

    evaluating = EMDataModule(main, extra=_extra(Unreachable(), 0.5))
    evaluating.trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    evaluating.trainer.state.fn = TrainerFn.TESTING
    evaluating.prepare_data()  # raised above if it had prepared the extra stack
    evaluating.trainer.state.fn = TrainerFn.FITTING
    with pytest.raises(AssertionError, match="prepared the extra stack"):
        evaluating.prepare_data()


def test_a_volume_read_lazily_mixes_with_an_extra_stack_in_memory(synthetic_tiffs):
    images, labels = synthetic_tiffs
    module = EMDataModule(
        TiffSource(str(images), str(labels)),
        crop_size=32,
        train_samples=10,
        loading="lazy",
        extra=_extra(SyntheticSource(num_slices=2, size=48, seed=9), 0.5),
    )
    module.prepare_data()
    module.setup("fit")
    dataset = module.train_dataloader().dataset
    assert module.lazy and (len(dataset.first), len(dataset.second)) == (5, 5)
    items = [dataset[(i, 100 + i)] for i in range(10)]
    assert all(item["image"].shape == (1, 32, 32) and set(item["label"].unique().tolist()) <= {0, 1} for item in items)
    assert torch.equal(dataset[(7, 3)]["image"], dataset.second[(2, 3)]["image"])  # the same key, the same crop
