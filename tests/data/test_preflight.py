import numpy as np
import pytest
import tifffile
from hydra.utils import instantiate

from src.data.preflight import checked_source, reads_lazily
from src.data.sources import PublishedSource
from src.utils.errors import UserError
from tests.conftest import compose_config


def _data(images, labels, *overrides):
    cfg = compose_config("train", ["data=tiff", f"data.source.images={images}", f"data.source.labels={labels}",
                                   *overrides])  # fmt: skip
    return cfg.data


def test_the_stacks_read_and_checked_are_the_ones_training_uses(synthetic_tiffs):
    images, labels = synthetic_tiffs
    source = checked_source(_data(images, labels))
    expected = tifffile.imread(images), tifffile.imread(labels)
    tifffile.imwrite(images, 255 - expected[0])  # training must not read the pixels again
    datamodule = instantiate(_data(images, labels, "data.fold=4"), source=source)
    datamodule.setup("fit")
    np.testing.assert_array_equal(datamodule.images_as_read, expected[0])
    np.testing.assert_array_equal(datamodule.labels_as_read, expected[1])
    assert datamodule.splits["test"] == [8, 9]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("nan", r"image stack \S+images\S* holds 1 NaN or infinite pixels"),
        ("label", "label value 7"),
        ("missing", "not found"),
    ],
)
def test_bad_stacks_fail_before_training(synthetic_tiffs, change, message):
    images, labels = synthetic_tiffs
    if change == "nan":
        stack = tifffile.imread(images).astype(np.float32)
        stack[3, 5, 5] = np.nan
        tifffile.imwrite(images, stack)
    elif change == "label":
        stack = tifffile.imread(labels)
        stack[0, 0, 0] = 7
        tifffile.imwrite(labels, stack)
    else:
        labels.unlink()
    with pytest.raises(UserError, match=message):
        checked_source(_data(images, labels))


def test_a_stack_of_fewer_slices_than_folds_is_refused_with_what_to_set(synthetic_tiffs):
    images, labels = synthetic_tiffs  # 10 slices
    with pytest.raises(UserError, match=r"10 slices along z, fewer than data.num_folds=12: set data.num_folds=10 or"):
        checked_source(_data(images, labels, "data.num_folds=12", "data.fold=3"))
    checked_source(_data(images, labels, "data.num_folds=10", "data.fold=9"))


@pytest.mark.parametrize("overrides", [["data.loading=lazy"], ["data.lazy_above_gib=0.00001"]])
def test_volumes_read_lazily_are_left_to_the_data_module(synthetic_tiffs, overrides):
    images, labels = synthetic_tiffs
    stack = tifffile.imread(images).astype(np.float32)
    stack[3, 5, 5] = np.nan  # found by the lazy reader's own statistics, slice by slice, not here
    tifffile.imwrite(images, stack)
    source = checked_source(_data(images, labels, *overrides))
    images.unlink()
    with pytest.raises(UserError):
        source.load()  # nothing was read and kept


def test_a_published_data_set_is_not_fetched_here(tmp_path):
    cfg = compose_config("train", ["data=isbi2012", f"paths.data_dir={tmp_path}", "data.source.mirror=null"])
    source = checked_source(cfg.data)
    assert isinstance(source, PublishedSource)
    assert list(tmp_path.iterdir()) == []  # fetched by the data module on one process per node


def test_the_lazy_rule_the_data_module_follows_too():
    gib = 2**30
    assert reads_lazily("lazy", None, 2.0) and reads_lazily("lazy", 1, 2.0)
    assert reads_lazily("auto", 3 * gib, 2.0) and not reads_lazily("auto", 2 * gib, 2.0)
    assert not reads_lazily("auto", None, 2.0) and not reads_lazily("memory", 3 * gib, 2.0)


def test_the_checks_before_training_import_neither_torch_nor_lightning(synthetic_tiffs):
    """What the check buys is the seconds of those imports: a bad stack fails before them."""
    import subprocess
    import sys

    images, labels = synthetic_tiffs
    script = f"""
import sys
from src.utils.allocator import reuse_freed_memory
from src.utils.ddp_jobs import job_scope
from tests.data.test_preflight import _data
from src.data.preflight import checked_source
reuse_freed_memory(False)
with job_scope([], ".", "train", False):
    checked_source(_data({str(images)!r}, {str(labels)!r}))
print(sorted(name for name in ("torch", "lightning", "albumentations") if name in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("data.batch_size=-2", "data.batch_size=-2 and data.val_batch_size must be at least 1"),
        ("data.fold=7", "data.fold=7 is out of range: choose 0 to 4"),
        ("data.val_fold=5", "data.val_fold=5 is out of range"),
        ("data.loading=disk", "data.loading=disk must be one of auto, memory, lazy"),
        ("data.num_workers=-1", "data.num_workers=-1 must be 0"),
        ("data.lazy_above_gib=-0.5", "data.lazy_above_gib=-0.5 must be 0"),
        ("data.eval_box=0", "data.eval_box=0 must be positive"),
        ("data.ignore=0", "data.ignore=0 is also a value of data.classes.membrane"),
        ("data.boundary_class=glia", "data.boundary_class=glia is not one of data.classes"),
        ("data.statistics_boxes=-1", "data.statistics_boxes=-1 must be positive"),
    ],
)
def test_settings_are_refused_before_any_file_is_read(tmp_path, override, words):
    missing = tmp_path / "not_there.tif"  # a setting fails first, so the missing stacks are never looked for
    with pytest.raises(UserError, match=words):
        checked_source(_data(missing, missing, override))


@pytest.mark.parametrize(
    ("override", "words"),
    [("data.weight_map.sigma=0", "data.weight_map: sigma=0.0 must be positive"), ("data.weight_map.w0=-10", "w0=-10")],
)
def test_a_weight_map_without_width_or_with_negative_weights_is_refused_before_any_file_is_read(
    tmp_path, override, words
):
    missing = tmp_path / "not_there.tif"
    with pytest.raises(UserError, match=words):
        checked_source(_data(missing, missing, "loss=weighted_ce", override))
