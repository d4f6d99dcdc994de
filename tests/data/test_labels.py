"""Label stacks: raw values become class ids by the data config's classes; unknown values, an ignore value that is
a class and inverted-looking labels each get one clear line; instance ids become boundary and interior."""

import logging

import numpy as np
import pytest
import tifffile

from src.data.labels import IGNORE, ClassMap, binary_labels, instance_boundaries
from src.utils.errors import UserError

VNC = {"membrane": [0, 32, 64, 96, 128], "glia": [159], "mitochondria": [191], "synapse": [223], "interior": [255]}


def test_binary_labels_for_scoring_without_a_data_config():
    assert binary_labels(np.array([[0, 255]], np.uint8)).tolist() == [[0, 1]]
    with pytest.raises(UserError, match="not binary"):
        binary_labels(np.array([[0, 1, 2]], np.uint8))


def test_isbi_labels_become_the_binary_classes_of_before(isbi_stack):
    labels = isbi_stack[1][:3]
    classes = ClassMap({"membrane": [0], "interior": [255]}, boundary_class="membrane").encode(labels)
    assert classes.dtype == np.uint8 and np.array_equal(classes, (labels > 0).astype(np.uint8))


def test_vnc2013_nine_values_become_five_classes_in_the_published_shares(vnc_dir):
    raw = tifffile.imread(vnc_dir / "train-labels.tif")
    classes = ClassMap(VNC, boundary_class="membrane").encode(raw)
    share = np.bincount(classes.ravel(), minlength=5) / classes.size
    # SOURCE.md: membranes 2.6 + 2.9 + 3.4 + 3.2 + 5.1 = 17.2%, glia 2.9%, mitochondria 5.4%, synapse 0.6%, 74.1%
    assert np.allclose(share, [0.172, 0.029, 0.054, 0.006, 0.741], atol=0.005)  # sections 0-13 of the 20
    assert np.array_equal(classes == 0, raw <= 128)


def test_an_unknown_value_names_the_value_the_file_and_the_key():
    with pytest.raises(UserError, match=r"label value 7 in labels\.tif is in no class of data\.classes.*data\.ignore"):
        ClassMap({"membrane": [0], "interior": [255]}).encode(np.array([[0, 7, 255]], np.uint8), "labels.tif")


def test_ignored_pixels_become_the_ignore_class_and_ignore_cannot_be_a_class():
    classes = ClassMap({"background": [0], "mitochondria": [1]}, ignore=2).encode(np.array([[0, 1, 2]], np.uint8))
    assert classes.tolist() == [[0, 1, IGNORE]]
    with pytest.raises(UserError, match="data.ignore=0 is also a value of data.classes.background"):
        ClassMap({"background": [0], "mitochondria": [1]}, ignore=0)
    with pytest.raises(UserError, match="in both data.classes.a and .b"):
        ClassMap({"a": [0, 1], "b": [1]})
    with pytest.raises(UserError, match="data.boundary_class=membrane is not one of"):
        ClassMap({"a": [0], "b": [1]}, boundary_class="membrane")


def test_inverted_isbi_labels_get_one_warning_with_the_key_that_flips_them(isbi_stack, caplog):
    inverted = (isbi_stack[1] == 0).astype(np.uint8)  # membranes stored as 1, as a new user might
    tiff_default = ClassMap({"membrane": [0], "interior": [1, 255]}, boundary_class="membrane")
    with caplog.at_level(logging.WARNING, logger="src.data.labels"):
        classes = tiff_default.encode(inverted, "train-labels.tif")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "train-labels.tif look inverted: 78% of the labelled pixels" in warnings[0]
    assert "'data.classes={membrane:[1,255],interior:[0]}'" in warnings[0]
    assert np.mean(classes == 0) > 0.7
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="src.data.labels"):
        tiff_default.encode(isbi_stack[1], "train-labels.tif")
    assert not caplog.records


def test_instance_labels_become_a_boundary_band_between_ids():
    ids = np.zeros((6, 8), np.int64)
    ids[:, :4], ids[:, 4:] = 5, 9
    assert instance_boundaries(ids, 1)[0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert instance_boundaries(ids, 2)[0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    spec = ClassMap({"boundary": [], "interior": []}, boundary_class="boundary", labels="instances", boundary_width=1)
    classes = spec.encode(ids)
    assert classes[0].tolist() == [1, 1, 1, 0, 0, 1, 1, 1]  # boundary is class 0 here
    with pytest.raises(UserError, match="labels=instances makes two classes"):
        ClassMap({"a": [], "b": [], "c": []}, boundary_class="a", labels="instances")
