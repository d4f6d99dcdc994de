"""The held-out report's markdown: the headline first, every scored output labelled, the sweep, each slice."""

import numpy as np

from src.evaluation.held_out import score_held_out
from src.evaluation.report import markdown_report
from src.inference.recipe import make_recipe

AGGLOMERATION = {"_target_": "src.postprocess.agglomeration.Agglomeration", "h": 0.07, "sigma": 0.0, "threshold": 0.55}
SETTINGS = {"tile_size": 0, "overlap": 0.5, "stitching": "crop", "sigma_scale": 0.125, "halo": 0, "tta": True}


def test_markdown_report_tables(isbi_stack, tmp_path):
    labels = isbi_stack[1][:2]
    outputs = [
        {
            "image": label,
            "label": (label > 0).astype(np.uint8),
            "prob": (label > 0) * np.float32(0.8),
            "classes": (label > 0).astype(np.uint8),
            "slice": index,
        }
        for index, label in zip((5, 6), labels, strict=True)
    ]
    recipe = make_recipe({**SETTINGS, "scored": "contours"}, AGGLOMERATION)
    result = score_held_out(outputs, recipe, tmp_path)
    text = markdown_report(result, "/x.ckpt", "figures/test_slices.png")
    lines = text.splitlines()
    headline = next(line for line in lines if "headline" in line)
    assert "contour map of Agglomeration" in headline and "(`predictions/test_contours.tif`)" in headline
    assert f"V_rand {result['headline']['vrand']:.4f}" in headline
    assert "- inference recipe: whole slices, mean of 8 flips/rotations, post-processing Agglomeration(" in text
    assert "| interior probability, best of the threshold sweep (ISBI 2012 protocol) | 1.0000 | 1.0000 |" in text
    assert any(line.startswith("| cells of Agglomeration at its fixed cut (no sweep) |") for line in lines)
    assert any(line.startswith("| 5 | 1.0000 |") for line in lines) and any(line.startswith("| 6 |") for line in lines)
    assert sum(line.startswith("| 0.") for line in lines) == len(result["threshold"]["per_threshold"])
    assert "![input, label, output and merge/split errors](figures/test_slices.png)" in text
