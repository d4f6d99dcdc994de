import numpy as np
import pytest
import tifffile

from src.data.labels import ClassMap
from src.data.normalize import normalize_slices
from src.data.synthetic import synthetic_stack
from src.data.volume import open_volume
from src.data.volume_sampling import sample_boxes, sample_statistics
from src.utils.errors import UserError
from tests.conftest import write_volume_copies

BINARY = ClassMap({"membrane": [0], "interior": [255]}, boundary_class="membrane")


def _volumes(tmp_path, images, labels):
    tifffile.imwrite(tmp_path / "i.tif", images)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    return open_volume(tmp_path / "i.tif"), open_volume(tmp_path / "l.tif")


def test_slices_no_larger_than_the_sample_are_read_whole_and_standardised_as_in_memory(tmp_path):
    images, labels = synthetic_stack(num_slices=3, size=96, num_cells=10, seed=1)
    stats = sample_statistics(*_volumes(tmp_path, images, labels), BINARY, boxes=1, box=96)
    assert stats.sampled.tolist() == [96 * 96] * 3
    in_memory = normalize_slices(images)
    for z in range(3):
        assert np.abs(stats.standardise(images[z], z) - in_memory[z]).max() < 1e-5
        low, span = stats.unit_range(z)
        assert low == pytest.approx(in_memory[z].min(), abs=1e-5)
        assert low + span == pytest.approx(in_memory[z].max(), abs=1e-5)
    for z, points in enumerate(stats.points):  # sampled positions of each class lie on that class
        assert set(points) == {0, 1}
        for class_id, where in points.items():
            assert np.all(BINARY.encode(labels[z])[where[:, 0], where[:, 1]] == class_id)


def test_large_slices_are_sampled_in_boxes_the_same_in_every_format(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(120, 30, (2, 300, 280))
    images[1, :150] += 40  # an uneven slice: the sample still estimates its mean
    images = images.clip(0, 255).astype(np.uint8)
    labels = np.where(rng.random(images.shape) < 0.2, 0, 255).astype(np.uint8)
    image_copies = write_volume_copies(images, tmp_path / "i")
    label_copies = write_volume_copies(labels, tmp_path / "l")
    found = []
    for kind in ("tiff", "hdf5", "zarr3", "n5"):
        volumes = open_volume(*image_copies[kind]), open_volume(*label_copies[kind])
        found.append(sample_statistics(*volumes, BINARY, boxes=20, box=32, seed=0))
    first = found[0]
    assert first.sampled.tolist() == [20 * 32 * 32] * 2
    for other in found[1:]:
        assert np.array_equal(other.mean, first.mean) and np.array_equal(other.std, first.std)
        assert all(np.array_equal(other.points[0][c], first.points[0][c]) for c in (0, 1))
    true_mean = images.reshape(2, -1).mean(1)
    assert np.abs(first.mean - true_mean).max() < 8  # a sample of 20,480 of 84,000 pixels
    assert np.abs(first.std / images.reshape(2, -1).std(1) - 1).max() < 0.1
    again = sample_statistics(open_volume(*image_copies["tiff"]), boxes=20, box=32, seed=1)
    assert not np.array_equal(again.mean, first.mean)  # another seed, another sample


def test_sample_boxes_stay_inside_the_slice():
    rng = np.random.default_rng(3)
    boxes = sample_boxes(1000, 50, 8, 64, rng)
    assert len(boxes) == 8 and len({r.start for r, _ in boxes}) == 8
    assert all(r.stop <= 1000 and r.stop - r.start == 64 and c == slice(0, 50) for r, c in boxes)
    assert sample_boxes(10, 10, 2, 64, rng) == [(slice(0, 10), slice(0, 10))]


def test_non_finite_pixels_and_unknown_labels_are_refused(tmp_path):
    images = np.ones((2, 16, 16), np.float32)
    images[1, 3, 3] = np.nan
    labels = np.zeros((2, 16, 16), np.uint8)
    with pytest.raises(UserError, match="NaN or infinite pixels in slice 1"):
        sample_statistics(*_volumes(tmp_path, images, labels), BINARY)
    images[1, 3, 3] = 0
    labels[0, 0, 0] = 7
    with pytest.raises(UserError, match="label value 7 in .*l.tif is in no class"):
        sample_statistics(*_volumes(tmp_path, images, labels), BINARY)
