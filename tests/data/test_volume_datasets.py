import pickle

import numpy as np
import tifffile

from src.data.augment import build_train_transform
from src.data.label_widening import widen_boundary
from src.data.labels import ClassMap
from src.data.synthetic import synthetic_stack
from src.data.volume import Box, LazyVolume
from src.data.volume_datasets import VolumeBoxDataset, VolumeCropDataset, read_classes
from src.data.volume_sampling import sample_statistics
from tests.conftest import write_volume_copies

BINARY = ClassMap({"membrane": [0], "interior": [255]}, boundary_class="membrane")


def _lazy(path, key=None, what="image stack"):
    return LazyVolume(path, key, what, "check the path")


def _stack(tmp_path, **kwargs):
    images, labels = synthetic_stack(**{"num_slices": 4, "size": 96, "num_cells": 12, "seed": 2, **kwargs})
    tifffile.imwrite(tmp_path / "i.tif", images)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    return images, labels, _lazy(tmp_path / "i.tif"), _lazy(tmp_path / "l.tif", what="label stack")


def test_a_box_is_mapped_to_classes_as_the_whole_slice_is(tmp_path):
    ids = np.zeros((1, 60, 60), np.uint16)
    ids[0, :, :30], ids[0, :, 30:] = 1, 2
    ids[0, 20:40, 10:25] = 3
    tifffile.imwrite(tmp_path / "ids.tif", ids)
    instances = ClassMap({"boundary": [], "interior": []}, boundary_class="boundary", labels="instances")
    box = Box(0, (15, 45), (20, 35))
    whole = instances.encode(ids)[0]
    assert np.array_equal(read_classes(_lazy(tmp_path / "ids.tif"), box, instances), whole[15:45, 20:35])
    classes = np.where(whole == 0, 0, 255).astype(np.uint8)[None]
    tifffile.imwrite(tmp_path / "classes.tif", classes)
    widened = widen_boundary(BINARY.encode(classes)[0], 3, 0)
    found = read_classes(_lazy(tmp_path / "classes.tif"), box, BINARY, widening=3)
    assert np.array_equal(found, widened[15:45, 20:35])


def test_crops_are_read_inside_their_pieces_and_depend_only_on_their_seed(tmp_path):
    images, labels, image_volume, label_volume = _stack(tmp_path)
    stats = sample_statistics(image_volume.volume, label_volume.volume, BINARY)
    pieces = [Box(0, (0, 96), (0, 96)), Box(2, (10, 50), (0, 96))]
    transform = build_train_transform(32, (40, 40), flip_rotate_p=1.0, elastic_p=1.0, random_crop=False)
    dataset = VolumeCropDataset(image_volume, label_volume, pieces, stats, BINARY, transform, 20, 32)
    for index in range(20):
        box = dataset.crop_box(index, 1000 + index)
        piece = pieces[index % 2]
        assert box.z == piece.z and box.shape == (32, 32)
        assert piece.y[0] <= box.y[0] and box.y[1] <= piece.y[1] and piece.x[0] <= box.x[0] and box.x[1] <= piece.x[1]
    a, b = dataset[(3, 77)], pickle.loads(pickle.dumps(dataset))[(3, 77)]  # as a loader worker gets it
    assert a["image"].shape == (1, 32, 32) and a["label"].shape == (32, 32)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["label"], b["label"])
    unaugmented = build_train_transform(32, (40, 40), flip_rotate_p=0.0, random_crop=False)
    plain = VolumeCropDataset(image_volume, label_volume, pieces, stats, BINARY, unaugmented, 20, 32)
    item, box = plain[(0, 5)], plain.crop_box(0, 5)
    expected = stats.standardise(images[box.z, slice(*box.y), slice(*box.x)], box.z)
    assert np.abs(item["image"][0].numpy() - expected).max() < 1e-5
    assert np.array_equal(item["label"].numpy(), BINARY.encode(labels[box.z, slice(*box.y), slice(*box.x)]))


def test_class_balanced_crops_are_centred_on_the_rare_class(tmp_path):
    images, labels, image_volume, label_volume = _stack(tmp_path, num_slices=2)
    labels[:] = 255
    labels[:, 70:74, 10:14] = 0  # one small membrane patch per slice
    tifffile.imwrite(tmp_path / "l.tif", labels)
    stats = sample_statistics(image_volume.volume, label_volume.volume, BINARY)
    transform = build_train_transform(24, (96, 96), random_crop=False)
    pieces = [Box(0, (0, 96), (0, 96)), Box(1, (0, 96), (0, 96))]
    balanced = VolumeCropDataset(image_volume, label_volume, pieces, stats, BINARY, transform, 40, 24, 1.0)
    plain = VolumeCropDataset(image_volume, label_volume, pieces, stats, BINARY, transform, 40, 24, 0.0)
    hits = [sum(int((d[(i, i)]["label"] == 0).any()) for i in range(40)) for d in (balanced, plain)]
    # Half the balanced crops draw the membrane and all of those hold it; a plain crop holds it about 1 time in 7.
    assert hits[0] >= 20 and hits[1] <= 10, hits


def test_held_out_boxes_are_numbered_by_slice_and_equal_across_formats(tmp_path):
    images, labels, image_volume, label_volume = _stack(tmp_path)
    stats = sample_statistics(image_volume.volume, label_volume.volume, BINARY)
    whole = VolumeBoxDataset(image_volume, label_volume, [Box(1, (0, 96), (0, 96)), Box(3, (0, 96), (0, 96))],
                             stats, BINARY)  # fmt: skip
    assert [int(whole[i]["slice"]) for i in range(2)] == [1, 3]
    as_read = whole.as_read()
    assert np.array_equal(as_read[0], images[[1, 3]]) and np.array_equal(as_read[1], labels[[1, 3]])
    boxes = [Box(2, (0, 48), (0, 48)), Box(2, (48, 96), (48, 96))]
    tiles = VolumeBoxDataset(image_volume, label_volume, boxes, stats, BINARY)
    assert [int(tiles[i]["slice"]) for i in range(2)] == [0, 1]
    image_copies = write_volume_copies(images, tmp_path / "ic")
    label_copies = write_volume_copies(labels, tmp_path / "lc")
    for kind in ("hdf5", "zarr3", "n5"):
        copy = VolumeBoxDataset(_lazy(*image_copies[kind]), _lazy(*label_copies[kind]), boxes, stats, BINARY)
        for i in range(2):
            assert np.array_equal(copy[i]["image"], tiles[i]["image"])
            assert np.array_equal(copy[i]["label"], tiles[i]["label"])
