"""The held-out evaluation that training and ``src.eval`` both run: predict the slices by the inference recipe,
score the class map per class (Dice, IoU), turn the cells' probability into cells, score every output by the
ISBI 2012 protocol, write the stacks and the headline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from src.data.labels import IGNORE
from src.data.tiff import StackWriter
from src.inference.class_outputs import cell_probability, class_map
from src.inference.recipe import slice_predictor
from src.metrics.classes import class_scores
from src.metrics.isbi import score_probabilities, score_segmentations
from src.models.module import SegmentationModule
from src.postprocess.instances import build_postprocess, cells_and_contours, reads_affinities

SWEEP_KEYS = ("vrand", "vinfo", "threshold", "vinfo_threshold", "per_slice")


def predict_slices(
    module: SegmentationModule, dataset, trainer: L.Trainer, recipe: dict
) -> list[dict[str, np.ndarray]]:
    """Every slice of ``dataset`` as the inference ``recipe`` predicts it (whole slices or tiles, test-time
    augmentation; :func:`~src.inference.recipe.slice_predictor`), at the trainer's precision: its class map
    (``classes``), its cells' probability (``prob``, where the classes name a boundary), its affinities (where the
    network predicts them) and its label (class ids)."""
    device = next(module.parameters()).device
    predictor = slice_predictor(module, recipe, device, autocast_dtype=None, output="all")
    items = list(dataset)
    with trainer.precision_plugin.forward_context():
        outputs = list(predictor.predict_many(item["image"][0].numpy() for item in items))
    boundary, num_classes = module.boundary_class, len(module.classes)
    return [
        {
            "image": item["image"][0].numpy(),
            "label": item["label"].numpy(),
            "classes": class_map(p[:num_classes]),
            "prob": None if boundary is None else cell_probability(p[:num_classes], boundary),
            "affinities": p[num_classes:] if len(p) > num_classes else None,
            "slice": int(item["slice"]),
        }
        for item, p in zip(items, outputs, strict=True)
    ]


def stacked(outputs: list[dict[str, np.ndarray]], boundary: int | None = 0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The cells' probability stack, their label masks (1 = cell) and the slice indices of :func:`predict_slices`'
    outputs."""
    labels = np.stack([o["label"] for o in outputs])
    return (
        np.stack([o["prob"] for o in outputs]),
        ((labels != boundary) & (labels != IGNORE)).astype(np.uint8),
        [o["slice"] for o in outputs],
    )


def cells_of(
    method: Any, probs: np.ndarray, affinities: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Labelled cells of a probability stack (or of the affinity stack, for a method that reads affinities) by a
    post-processing ``method``, and its contour map where it has one
    (:func:`~src.postprocess.instances.cells_and_contours`, slice by slice)."""
    if reads_affinities(method):
        probs = affinities
    cells, contours = zip(*(cells_and_contours(method, prob) for prob in probs), strict=True)
    return np.stack(cells), (None if contours[0] is None else np.stack(contours))


def method_name(config: dict) -> str:
    return config["_target_"].rsplit(".", 1)[-1]


def score_method(
    method: Any, probs: np.ndarray, labels: np.ndarray, ids: Sequence[int], affinities: np.ndarray | None = None
) -> dict:
    """The cells of ``method`` scored by the protocol (no sweep), with the sweep of its contour map if any, and the
    seconds it took per slice to make them."""
    started = time.perf_counter()
    cells, contours = cells_of(method, probs, affinities)
    seconds = round((time.perf_counter() - started) / len(cells), 3)
    result = {"cells": cells, "contour_map": contours, "seconds_per_slice": seconds}
    result.update(score_segmentations(cells, labels, ids, workers=0))
    if contours is not None:
        sweep = score_probabilities(contours, labels, slice_ids=ids, workers=0)
        result["contours"] = {k: sweep[k] for k in SWEEP_KEYS}
    return result


def write_held_out(
    output_dir: Path, stacks: dict[str, np.ndarray], class_names: Sequence[str] = (), calibration=None
) -> dict:
    """Write the held-out stacks to ``output_dir/predictions/`` as TIFF, each through a temporary name, so a file
    that exists is complete, with the data's ``calibration`` (:class:`src.data.tiff.Calibration`); their paths
    relative to ``output_dir``.

    ``test_images.tif`` (the input slices as read), ``test_classes.tif`` (uint8 class ids, the class names in its
    metadata), ``test_probability.tif`` (float32, the cells' probability), ``test_cells.tif`` (uint32, 0 = border),
    ``test_contours.tif`` (float32 contour map of a post-processing that has one) and ``test_labels.tif`` (the
    labels as the data set stores them).
    """
    folder = output_dir / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, stack in stacks.items():
        metadata = {"classes": list(class_names)} if name == "classes" and class_names else {}
        with StackWriter(folder / f"test_{name}.tif", metadata, calibration) as writer:
            for page in stack:
                writer.write(page)
            written[f"test_{name}.tif"] = str(writer.commit().relative_to(output_dir))
    return written


def _postprocessed(config: dict, probs, labels, ids, affinities, offsets, stacks: dict) -> dict:
    """The recipe's post-processing scored: its cells (and its contour map's sweep); the stacks added to ``stacks``."""
    name = method_name(config)
    method = build_postprocess(config, offsets)
    scores = score_method(method, probs, labels, ids, affinities)
    stacks["cells"] = scores["cells"].astype(np.uint32)
    result = {}
    if "contours" in scores:
        stacks["contours"] = scores["contour_map"].astype(np.float32)
        result["contours"] = {"what": f"contour map of {name}, best of the threshold sweep", **scores["contours"]}
    cut = "of the affinities, no threshold" if reads_affinities(method) else "at its fixed cut"
    result["postprocess"] = {
        "what": f"cells of {name} {cut} (no sweep)",
        "method": name,
        **{k: scores[k] for k in ("vrand", "vinfo", "pixel_error", "seconds_per_slice", "per_slice")},
    }
    return result


def _compared(
    methods: dict[str, dict], probs: np.ndarray, labels: np.ndarray, ids: Sequence[int], affinities, offsets
) -> dict:
    """Other post-processing methods' cells (and contour-map sweeps), scored beside the recipe's; those that read
    affinities only for a network that predicts them."""
    results = {}
    for name, config in methods.items():
        params = {k: v for k, v in config.items() if k != "_target_"}
        method = build_postprocess(config, offsets, optional=True)
        if method is None:
            continue
        scores = score_method(method, probs, labels, ids, affinities)
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
    labels_as_read: np.ndarray | None = None,
    calibration=None,
) -> dict:
    """Predict the held-out ``dataset`` by the inference ``recipe``, then :func:`score_held_out`."""
    outputs = predict_slices(module, dataset, trainer, recipe)
    classes = (module.classes, module.boundary_class)
    return score_held_out(
        outputs, recipe, output_dir, images, compare, *classes, labels_as_read, module.offsets, calibration
    )


def score_held_out(
    outputs: list[dict[str, np.ndarray]],
    recipe: dict,
    output_dir: Path,
    images: np.ndarray | None = None,
    compare: dict[str, dict] | None = None,
    class_names: Sequence[str] = ("membrane", "interior"),
    boundary: int | None = 0,
    labels_as_read: np.ndarray | None = None,
    offsets: Sequence = (),
    calibration=None,
) -> dict:
    """Score the class map per class, post-process the predicted held-out slices by the ``recipe``, score every
    output by the ISBI 2012 protocol and write the stacks (:func:`write_held_out`; ``images``: the input slices as
    read, ``labels_as_read``: their labels as the data set stores them, ``calibration``: the data's voxel size).

    Returns the ``headline`` (the recipe's scored output, with the per-class Dice) and every other score labelled
    with what it is: the class map's per-class Dice and IoU, the probability's threshold sweep, the contour map's
    sweep, the cells at the method's fixed cut, and the ``compare`` methods' cells. Classes with no boundary class
    have only the class map's scores.
    """
    ids = [o["slice"] for o in outputs]
    classes = np.stack([o["classes"] for o in outputs])
    class_labels = np.stack([o["label"] for o in outputs])
    result: dict = {
        "recipe": recipe,
        "slices": ids,
        "tta": recipe["tta"],
        "classes": class_section(ids, classes, class_labels, class_names),
    }
    stacks = {} if images is None else {"images": images}
    stacks["classes"] = classes
    if labels_as_read is None:
        labels_as_read = class_labels if boundary is None else (class_labels != boundary).astype(np.uint8) * 255
    if boundary is None:
        stacks["labels"] = labels_as_read
        result["files"] = write_held_out(output_dir, stacks, class_names, calibration)
        result["headline"] = headline_of(result)
        return result
    probs, labels, _ = stacked(outputs, boundary)
    sweep = score_probabilities(probs, labels, slice_ids=ids, workers=0)
    result["threshold"] = {"what": "interior probability, best of the threshold sweep (ISBI 2012 protocol)", **sweep}
    stacks["probability"] = probs.astype(np.float32)
    affinities = np.stack([o["affinities"] for o in outputs]) if outputs[0].get("affinities") is not None else None
    if recipe["postprocess"]:
        result.update(_postprocessed(recipe["postprocess"], probs, labels, ids, affinities, offsets, stacks))
    compare = {name: config for name, config in (compare or {}).items() if config != recipe["postprocess"]}
    if compare:
        result["compared"] = _compared(compare, probs, labels, ids, affinities, offsets)
    stacks["labels"] = labels_as_read
    result["files"] = write_held_out(output_dir, stacks, class_names, calibration)
    result["headline"] = headline_of(result)
    return result


def class_section(ids: Sequence[int], classes: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    """Per-class Dice and IoU of a class-map stack against class-id labels, over the stack and slice by slice."""
    return {
        "what": "class map (most probable class), Dice and IoU per class",
        "names": list(names),
        **class_scores(classes, labels, names),
        "per_slice": [
            {"slice": i, **{k: v for k, v in class_scores(c, lab, names).items() if k in ("dice", "iou")}}
            for i, c, lab in zip(ids, classes, labels, strict=True)
        ],
    }


SCORED_SECTION = {"probability": "threshold", "contours": "contours", "cells": "postprocess"}


def headline_of(result: dict) -> dict:
    """The one score of a held-out evaluation: the recipe's scored output, its file, slices, V_rand and V_info, and
    the class map's Dice per class (the class map alone where the classes name no boundary)."""
    per_class = result["classes"]
    dice = {
        "dice": per_class["dice"],
        "mean_dice": per_class["mean_dice"],
        "class_map": result["files"]["test_classes.tif"],
    }
    if "threshold" not in result:
        return {
            "scored": "classes",
            "what": per_class["what"],
            "prediction": result["files"]["test_classes.tif"],
            "slices": result["slices"],
            **dice,
        }
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
    return {**headline, **dice}


def headline_line(headline: dict) -> str:
    """The headline as the one line a task ends with (the per-class Dice in it when there are more than two)."""
    slices = headline["slices"]
    span = f"{slices[0]}-{slices[-1]}" if slices == list(range(slices[0], slices[-1] + 1)) else str(slices)
    line = f"headline: {headline['what']} ({headline['prediction']}), held-out slices {span}: "
    scores = []
    if "vrand" in headline:
        scores.append(f"V_rand {headline['vrand']:.4f}, V_info {headline['vinfo']:.4f}")
    if "vrand" not in headline or len(headline["dice"]) > 2:
        per_class = ", ".join(f"{name} {value:.3f}" for name, value in headline["dice"].items())
        scores.append(f"Dice {per_class}; mean Dice {headline['mean_dice']:.4f}")
    return line + "; ".join(scores)


def class_table(section: dict) -> str:
    """The held-out per-class Dice and IoU as a plain-text table, for the log."""
    rows = [f"{'class':<16}{'Dice':>8}{'IoU':>8}"]
    rows += [f"{name:<16}{section['dice'][name]:>8.4f}{section['iou'][name]:>8.4f}" for name in section["dice"]]
    rows.append(f"{'mean':<16}{section['mean_dice']:>8.4f}{section['mean_iou']:>8.4f}")
    return "\n".join(rows)
