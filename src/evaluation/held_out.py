"""The held-out evaluation that training and ``src.eval`` both run: predict the slices by the inference recipe,
turn the probability into cells, score every output by the ISBI 2012 protocol, write the stacks and the headline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from hydra.utils import instantiate

from src.data.tiff import StackWriter
from src.inference.recipe import slice_predictor
from src.metrics.isbi import score_probabilities, score_segmentations
from src.models.module import SegmentationModule
from src.postprocess.instances import cells_and_contours

SWEEP_KEYS = ("vrand", "vinfo", "threshold", "vinfo_threshold")


def predict_slices(
    module: SegmentationModule, dataset, trainer: L.Trainer, recipe: dict
) -> list[dict[str, np.ndarray]]:
    """Interior probability of every slice of ``dataset`` as the inference ``recipe`` predicts it (whole slices or
    tiles, test-time augmentation; :func:`~src.inference.recipe.slice_predictor`), at the trainer's precision."""
    device = next(module.parameters()).device
    predictor = slice_predictor(module, recipe, device, autocast_dtype=None)
    items = list(dataset)
    with trainer.precision_plugin.forward_context():
        probs = list(predictor.predict_many(item["image"][0].numpy() for item in items))
    return [
        {
            "image": item["image"][0].numpy(),
            "label": item["label"].numpy(),
            "prob": prob,
            "slice": int(item["slice"]),
        }
        for item, prob in zip(items, probs, strict=True)
    ]


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


def method_name(config: dict) -> str:
    return config["_target_"].rsplit(".", 1)[-1]


def score_method(method: Any, probs: np.ndarray, labels: np.ndarray, ids: Sequence[int]) -> dict:
    """The cells of ``method`` scored by the protocol (no sweep), with the sweep of its contour map if any."""
    cells, contours = cells_of(method, probs)
    result = {"cells": cells, "contour_map": contours, **score_segmentations(cells, labels, ids, workers=0)}
    if contours is not None:
        sweep = score_probabilities(contours, labels, slice_ids=ids, workers=0)
        result["contours"] = {k: sweep[k] for k in SWEEP_KEYS}
    return result


def write_held_out(output_dir: Path, stacks: dict[str, np.ndarray]) -> dict:
    """Write the held-out stacks to ``output_dir/predictions/`` as TIFF, each through a temporary name, so a file
    that exists is complete; their paths relative to ``output_dir``.

    ``test_images.tif`` (the input slices as read), ``test_probability.tif`` (float32 interior probability),
    ``test_cells.tif`` (uint32, 0 = border), ``test_contours.tif`` (float32 contour map of a post-processing that
    has one) and ``test_labels.tif`` (uint8, 0 = membrane, 255 = interior).
    """
    folder = output_dir / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, stack in stacks.items():
        with StackWriter(folder / f"test_{name}.tif") as writer:
            for page in stack:
                writer.write(page)
            written[f"test_{name}.tif"] = str(writer.commit().relative_to(output_dir))
    return written


def _compared(methods: dict[str, dict], probs: np.ndarray, labels: np.ndarray, ids: Sequence[int]) -> dict:
    """Other post-processing methods' cells (and contour-map sweeps), scored beside the recipe's."""
    results = {}
    for name, config in methods.items():
        params = {k: v for k, v in config.items() if k != "_target_"}
        scores = score_method(instantiate(config), probs, labels, ids)
        results[name] = {
            "what": f"cells of {method_name(config)} ({', '.join(f'{k}={v}' for k, v in params.items())}), no sweep",
            "params": params,
            **{k: v for k, v in scores.items() if k not in ("cells", "contour_map")},
        }
    return results


def held_out_evaluation(
    module: SegmentationModule,
    dataset,
    trainer: L.Trainer,
    recipe: dict,
    output_dir: Path,
    images: np.ndarray | None = None,
    compare: dict[str, dict] | None = None,
) -> dict:
    """Predict the held-out ``dataset`` by the inference ``recipe``, then :func:`score_held_out`."""
    outputs = predict_slices(module, dataset, trainer, recipe)
    return score_held_out(outputs, recipe, output_dir, images, compare)


def score_held_out(
    outputs: list[dict[str, np.ndarray]],
    recipe: dict,
    output_dir: Path,
    images: np.ndarray | None = None,
    compare: dict[str, dict] | None = None,
) -> dict:
    """Post-process the predicted held-out slices by the ``recipe``, score every output by the ISBI 2012 protocol
    and write the stacks (:func:`write_held_out`; ``images``: the input slices as read).

    Returns the ``headline`` (the recipe's scored output) and every other score labelled with what it is: the
    probability's threshold sweep, the contour map's sweep, the cells at the method's fixed cut, and the
    ``compare`` methods' cells.
    """
    probs, labels, ids = stacked(outputs)
    sweep = score_probabilities(probs, labels, slice_ids=ids, workers=0)
    result: dict = {
        "recipe": recipe,
        "slices": ids,
        "tta": recipe["tta"],
        "threshold": {"what": "interior probability, best of the threshold sweep (ISBI 2012 protocol)", **sweep},
    }
    stacks = {} if images is None else {"images": images}
    stacks["probability"] = probs.astype(np.float32)
    if recipe["postprocess"]:
        name = method_name(recipe["postprocess"])
        scores = score_method(instantiate(recipe["postprocess"]), probs, labels, ids)
        stacks["cells"] = scores["cells"].astype(np.uint32)
        if "contours" in scores:
            stacks["contours"] = scores["contour_map"].astype(np.float32)
            result["contours"] = {"what": f"contour map of {name}, best of the threshold sweep", **scores["contours"]}
        result["postprocess"] = {
            "what": f"cells of {name} at its fixed cut (no sweep)",
            "method": name,
            **{k: scores[k] for k in ("vrand", "vinfo", "pixel_error", "per_slice")},
        }
    compare = {name: config for name, config in (compare or {}).items() if config != recipe["postprocess"]}
    if compare:
        result["compared"] = _compared(compare, probs, labels, ids)
    stacks["labels"] = (labels > 0).astype(np.uint8) * 255
    result["files"] = write_held_out(output_dir, stacks)
    result["headline"] = headline_of(result)
    return result


SCORED_SECTION = {"probability": "threshold", "contours": "contours", "cells": "postprocess"}


def headline_of(result: dict) -> dict:
    """The one score of a held-out evaluation: the recipe's scored output, its file, slices, V_rand and V_info."""
    scored = result["recipe"]["scored"]
    section = result[SCORED_SECTION[scored]]
    headline = {
        "scored": scored,
        "what": section["what"],
        "prediction": result["files"][f"test_{'probability' if scored == 'probability' else scored}.tif"],
        "slices": result["slices"],
        "vrand": section["vrand"],
        "vinfo": section["vinfo"],
    }
    if "threshold" in section:
        headline.update(threshold=section["threshold"], vinfo_threshold=section["vinfo_threshold"])
    return headline


def headline_line(headline: dict) -> str:
    """The headline as the one line a task ends with."""
    slices = headline["slices"]
    span = f"{slices[0]}-{slices[-1]}" if slices == list(range(slices[0], slices[-1] + 1)) else str(slices)
    return (
        f"headline: {headline['what']} ({headline['prediction']}), held-out slices {span}: "
        f"V_rand {headline['vrand']:.4f}, V_info {headline['vinfo']:.4f}"
    )
