"""The results figure's error row and the markdown report."""

import numpy as np

from src.evaluation.figures import MERGE_COLOUR, SPLIT_COLOUR, error_overlay, results_figure
from src.metrics.isbi import segment_errors


def _two_cells() -> np.ndarray:
    label = np.zeros((40, 60), np.uint8)
    label[2:38, 2:29] = 255
    label[2:38, 31:58] = 255
    return label


def test_a_merge_is_red_and_a_split_is_blue():
    label = _two_cells()
    truth = (label > 0).astype(int) * np.where(np.arange(60) < 30, 1, 2)[None]
    merged = np.where(label > 0, 7, 0)  # one segment over both cells
    merges, splits = segment_errors(truth, merged)
    # The smaller share of the merged segment (a tie here: the second cell) is the merge error.
    assert merges.sum() == (truth == 2).sum() and not splits.any()
    split = truth.copy()
    split[20:, :30] = np.where(label[20:, :30] > 0, 3, 0)  # the first cell cut in two (rows 2-19 / 20-37)
    merges, splits = segment_errors(truth, split)
    assert not merges.any() and splits.sum() == (split == 3).sum()

    prob = np.where(label > 0, 0.9, 0.1).astype(np.float32)
    prob[:, 29:31] = 0.9  # no membrane between the cells: they merge
    rgb = error_overlay(np.random.default_rng(0).random(label.shape), prob, label)
    red = np.all(rgb == MERGE_COLOUR, axis=-1)
    assert red.sum() >= (label[:, 31:] > 0).sum() - 40 and not np.all(rgb == SPLIT_COLOUR, axis=-1).any()


def test_results_figure_has_four_rows(tmp_path):
    label = _two_cells()
    example = {"image": label / 255.0, "label": label, "prob": (label > 0) * 0.8, "slice": 3}
    path = results_figure([example, example], tmp_path / "f.png", "title", threshold=0.5)
    from matplotlib.image import imread

    height, width = imread(path).shape[:2]
    assert path.is_file() and height > 1.8 * width  # 4 rows of 2 columns


def test_classes_are_drawn_in_their_fixed_colours(tmp_path):
    from matplotlib.image import imread

    from src.data.labels import IGNORE
    from src.evaluation.figures import CLASS_COLOURS, class_colours

    classes = np.array([[0, 1, 4, IGNORE]], np.uint8)
    assert np.allclose(class_colours(classes)[0], [CLASS_COLOURS[0], CLASS_COLOURS[1], CLASS_COLOURS[4], (0, 0, 0)])
    label = np.zeros((40, 60), np.uint8)
    label[10:30, 10:30] = 2  # a mitochondrion
    example = {"image": label / 2.0, "label": label, "classes": label, "slice": 1}
    names = ["membrane", "interior", "mitochondria"]
    path = results_figure([example], tmp_path / "c.png", boundary=None, class_names=names)
    picture = imread(path)[..., :3]
    assert picture.shape[0] > picture.shape[1]  # three rows (no probability, so no error row), one column
    # the mitochondria colour is in the picture (label and output rows), as is the legend's
    assert np.isclose(picture, np.array(CLASS_COLOURS[2], np.float32), atol=0.02).all(-1).sum() > 100
