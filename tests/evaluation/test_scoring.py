"""Scoring prediction stacks from TIFF files: kinds of prediction, inversion, refused values."""

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from src.evaluation.scoring import score_arrays, score_files
from src.metrics.isbi import truth_segments
from src.utils.errors import UserError


def _write(path, array):
    tifffile.imwrite(path, array)
    return path


@pytest.fixture()
def stacks(isbi_stack, tmp_path):
    labels = isbi_stack[1]
    rng = np.random.default_rng(5)
    noisy = (labels[24:26] > 0).astype(np.float32) + rng.normal(0, 0.6, labels[24:26].shape).astype(np.float32)
    pred = np.clip(ndimage.gaussian_filter(noisy, (0, 1.2, 1.2)), 0, 1).astype(np.float32)
    return _write(tmp_path / "pred.tif", pred), _write(tmp_path / "labels.tif", labels), pred, labels


def test_binary_uint8_masks_and_labelled_cells_of_the_truth_score_one(isbi_stack, tmp_path):
    labels = isbi_stack[1][:3]
    as_mask = score_files(_write(tmp_path / "mask.tif", labels), _write(tmp_path / "labels.tif", labels))
    assert as_mask["kind"] == "probability" and as_mask["vrand"] == pytest.approx(1.0)
    assert as_mask["pixel_error"] == 0.0
    cells = np.stack([truth_segments(lab) for lab in labels]).astype(np.uint16)
    as_cells = score_files(_write(tmp_path / "cells.tif", cells), tmp_path / "labels.tif")
    assert as_cells["kind"] == "labels" and as_cells["threshold"] is None
    assert as_cells["vrand"] == pytest.approx(1.0) and as_cells["vinfo"] == pytest.approx(1.0)


def test_a_membrane_probability_can_be_inverted(stacks):
    pred_path, label_path, pred, _ = stacks
    direct = score_files(pred_path, label_path, label_slices="24:26")
    membrane = _write(pred_path.with_name("membrane.tif"), 1.0 - pred)
    inverted = score_files(membrane, label_path, label_slices="24:26", invert=True)
    assert inverted["vrand"] == pytest.approx(direct["vrand"], abs=1e-6)


def test_probabilities_outside_zero_to_one_are_refused(isbi_stack, tmp_path):
    labels = isbi_stack[1][:1]
    with pytest.raises(UserError, match=r"values in \[0, 2\]"):
        score_files(_write(tmp_path / "p.tif", (labels > 0) * np.float32(2)), _write(tmp_path / "l.tif", labels))


def test_arrays_and_files_give_the_same_scores(stacks):
    pred_path, label_path, pred, labels = stacks
    from_files = score_files(pred_path, label_path, label_slices="24:26")
    from_arrays = score_arrays(pred, labels[24:26], slice_ids=[24, 25])
    assert from_files["vrand"] == from_arrays["vrand"] and from_files["per_slice"] == from_arrays["per_slice"]
    assert from_files["prediction_slices"] == [0, 1] and from_files["label_slices"] == [24, 25]


def test_one_slice_of_affinities_is_found_by_kind_auto_and_decoded(isbi_stack, tmp_path):
    from src.data.tiff import StackWriter
    from src.models.affinities import affinities_of_cells, cells_of_labels
    from src.postprocess.mutex_watershed import MutexWatershed

    labels = isbi_stack[1][24:25, :128, :128]
    offsets = [[-1, 0], [0, -1], [-9, 0], [0, -9]]
    cells = cells_of_labels((labels[0] > 0).astype(np.uint8), boundary=0, nearest_cell=True)  # classes 0, 1
    affinities, _ = affinities_of_cells(cells, offsets)
    path = tmp_path / "slice_affinities.tif"
    with StackWriter(path, {"offsets": offsets}) as writer:  # as src.predict writes one 2-D image's: (K, H, W)
        writer.write(affinities)
        writer.commit()
    assert tifffile.imread(path).shape == (4, 128, 128)
    label_path = _write(tmp_path / "labels.tif", labels)
    decoder = MutexWatershed(fragments_h=0.0, min_size=0)
    scored = score_files(path, label_path, postprocess=decoder)
    assert scored["kind"] == "labels" and scored["slices"] == 1 and scored["vrand"] == pytest.approx(1.0)
    with pytest.raises(UserError, match=r"holds affinities \(kind=affinities\); choose how cells are made"):
        score_files(path, label_path)
    probability = _write(tmp_path / "prob.tif", (labels > 0).astype(np.float32))
    with pytest.raises(UserError, match="makes cells from affinities, and prediction .* holds none"):
        score_files(probability, label_path, postprocess=decoder)
