"""The held-out evaluation that training and ``src.eval`` both run: predict whole slices (with test-time
augmentation), turn the probability into cells, score both by the ISBI 2012 protocol, write the stacks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from src.data.tiff import StackWriter
from src.inference.tta import tta_mean
from src.metrics.isbi import score_probabilities, score_segmentations
from src.models.module import SegmentationModule
from src.postprocess.instances import cells_and_contours

SWEEP_KEYS = ("vrand", "vinfo", "threshold", "vinfo_threshold")


def predict_slices(
    module: SegmentationModule, dataset, trainer: L.Trainer, tta: Sequence[int] = (0,)
) -> list[dict[str, np.ndarray]]:
    """Interior probability of every slice of ``dataset``, at the trainer's precision.

    ``tta`` lists the dihedral transforms (0 = identity, 0..7 all flips/rotations) whose probabilities are
    averaged, each mapped back to the slice's orientation.
    """
    device = next(module.parameters()).device
    module.eval()
    outputs = []
    with torch.inference_mode(), trainer.precision_plugin.forward_context():
        for item in dataset:
            image = item["image"][None].to(device)
            prob = tta_mean(image, tta, lambda x, _: module.interior_probability(x))[0]
            outputs.append(
                {
                    "image": item["image"][0].numpy(),
                    "label": item["label"].numpy(),
                    "prob": prob.float().cpu().numpy(),
                    "slice": int(item["slice"]),
                }
            )
    return outputs


def stacked(outputs: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The probability stack, label stack and slice indices of :func:`predict_slices`' outputs."""
    return (
        np.stack([o["prob"] for o in outputs]),
        np.stack([o["label"] for o in outputs]),
        [o["slice"] for o in outputs],
    )


def cells_of(method: Any, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labelled cells of a probability stack by a post-processing ``method``, and its contour map where it
    has one (:func:`~src.postprocess.instances.cells_and_contours`, slice by slice)."""
    cells, contours = zip(*(cells_and_contours(method, prob) for prob in probs), strict=True)
    return np.stack(cells), (None if contours[0] is None else np.stack(contours))


def score_method(method: Any, probs: np.ndarray, labels: np.ndarray, ids: Sequence[int]) -> dict:
    """The cells of ``method`` scored by the protocol (no sweep), with the sweep of its contour map if any."""
    cells, contours = cells_of(method, probs)
    result = {"cells": cells, "contour_map": contours, **score_segmentations(cells, labels, ids, workers=0)}
    if contours is not None:
        sweep = score_probabilities(contours, labels, slice_ids=ids, workers=0)
        result["contours"] = {k: sweep[k] for k in SWEEP_KEYS}
    return result


def write_held_out(
    output_dir: Path,
    probs: np.ndarray,
    labels: np.ndarray,
    cells: np.ndarray | None,
    contours: np.ndarray | None = None,
) -> dict:
    """Write the held-out slices' interior probability, labelled cells and ground truth as TIFF stacks.

    Files go to ``output_dir/predictions/`` (``test_probability.tif`` float32, ``test_cells.tif`` uint32 with
    0 = border, ``test_labels.tif`` uint8 0 = membrane / 255 = interior, and with a post-processing that has
    one, ``test_contours.tif`` float32, its contour map), each through a temporary name, so a file that exists
    is complete. Returns their paths relative to ``output_dir``.
    """
    folder = output_dir / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    stacks = {
        "test_probability.tif": probs.astype(np.float32),
        "test_labels.tif": (labels > 0).astype(np.uint8) * 255,
    }
    if cells is not None:
        stacks["test_cells.tif"] = cells.astype(np.uint32)
    if contours is not None:
        stacks["test_contours.tif"] = contours.astype(np.float32)
    written = {}
    for name, stack in stacks.items():
        with StackWriter(folder / name) as writer:
            for page in stack:
                writer.write(page)
            written[name] = str(writer.commit().relative_to(output_dir))
    return written


def held_out_evaluation(
    module: SegmentationModule,
    dataset,
    trainer: L.Trainer,
    method: Any,
    tta: Sequence[int],
    output_dir: Path,
) -> dict:
    """Predict the held-out ``dataset`` (with ``tta``), post-process it by ``method`` (or None), score both and
    write them (:func:`write_held_out`).

    Returns the threshold sweep's scores, the post-processed cells' scores (and, for a method with a contour
    map, the sweep of that map) and the files written.
    """
    probs, labels, ids = stacked(predict_slices(module, dataset, trainer, tta))
    sweep = score_probabilities(probs, labels, slice_ids=ids, workers=0)
    result: dict = {"tta": list(tta), "threshold": {k: sweep[k] for k in SWEEP_KEYS}}
    cells = contours = None
    if method is not None:
        scores = score_method(method, probs, labels, ids)
        cells, contours = scores["cells"], scores["contour_map"]
        if "contours" in scores:
            result["contours"] = scores["contours"]
        result["postprocess"] = {
            "method": type(method).__name__,
            "vrand": scores["vrand"],
            "vinfo": scores["vinfo"],
            "per_slice": scores["per_slice"],
        }
    result["files"] = write_held_out(output_dir, probs, labels, cells, contours)
    return result
