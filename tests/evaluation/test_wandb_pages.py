"""What a W&B run page gets: the held-out summary, the per-slice table and the slices with class masks."""

import numpy as np

from src.data.labels import IGNORE
from src.evaluation.wandb_pages import held_out_summary, masked_slices, per_slice_table

HELD_OUT = {
    "slices": [24, 25],
    "headline": {"scored": "cells", "what": "cells of X", "slices": [24, 25], "vrand": 0.9, "vinfo": 0.8,
                 "mean_dice": 0.7, "dice": {"membrane": 0.6, "interior": 0.8}},
    "classes": {"names": ["membrane", "interior"], "per_slice": [
        {"slice": 24, "dice": {"membrane": 0.5, "interior": 0.7}},
        {"slice": 25, "dice": {"membrane": 0.7, "interior": 0.9}},
    ]},
    "threshold": {"per_slice": [{"slice": 24, "vrand": 0.0, "vinfo": 0.0}, {"slice": 25, "vrand": 0.0, "vinfo": 0.0}]},
    "postprocess": {"per_slice": [
        {"slice": 24, "vrand": 0.91, "vinfo": 0.81, "rand_split": 0.9, "rand_merge": 0.92, "pixel_error": 0.1},
        {"slice": 25, "vrand": 0.89, "vinfo": 0.79, "rand_split": 0.88, "rand_merge": 0.9, "pixel_error": 0.2},
    ]},
}  # fmt: skip


def test_the_summary_holds_the_headline_scores_and_what_they_scored():
    summary = held_out_summary(HELD_OUT)
    assert summary["held_out/vrand"] == 0.9 and summary["held_out/vinfo"] == 0.8
    assert summary["held_out/dice/membrane"] == 0.6 and summary["held_out/mean_dice"] == 0.7
    assert summary["held_out/scored"] == "cells of X" and summary["held_out/slices"] == [24, 25]


def test_the_per_slice_table_takes_the_scored_outputs_rows_and_the_class_dice():
    columns, rows = per_slice_table(HELD_OUT)  # scored: cells, so the post-processing's rows, not the threshold's
    assert columns == [
        "slice",
        *("vrand", "vinfo", "rand_split", "rand_merge", "pixel_error"),
        "dice_membrane",
        "dice_interior",
    ]
    assert rows == [[24, 0.91, 0.81, 0.9, 0.92, 0.1, 0.5, 0.7], [25, 0.89, 0.79, 0.88, 0.9, 0.2, 0.7, 0.9]]
    classes_only = {"slices": [24], "headline": {"scored": "classes"}, "classes": HELD_OUT["classes"]}
    assert per_slice_table(classes_only) == (["slice", "dice_membrane", "dice_interior"], [[24, 0.5, 0.7]])


def test_slices_become_8_bit_images_with_prediction_and_label_masks():
    label = np.array([[0, 1], [IGNORE, 1]])
    example = {"image": np.array([[-1.0, 0.0], [1.0, 3.0]]), "label": label, "classes": np.array([[0, 1], [1, 1]]),
               "slice": np.array(7)}  # fmt: skip
    (image,), extra = masked_slices([example], ["membrane", "interior"])
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255
    (masks,) = extra["masks"]
    assert masks["ground_truth"]["mask_data"].tolist() == [[0, 1], [2, 1]]  # unlabelled: a value of its own
    assert masks["ground_truth"]["class_labels"] == {0: "membrane", 1: "interior", 2: "unlabelled"}
    assert masks["prediction"]["mask_data"].tolist() == [[0, 1], [1, 1]] and extra["caption"] == ["slice 7"]
