"""Scoring any prediction stack against labels by the ISBI 2012 protocol and per class, from arrays or TIFF files.

What the prediction holds (``kind``): ``probability`` of cell interior (floats in [0, 1], or 8/16-bit integers
scaled by their maximum; binary masks are probabilities of 0 and 1), ``labels``: cells numbered 1..n with
0 for borders, scored as they are (thinned, no sweep), or ``classes``: a class map (class ids, as
``src.predict`` writes ``<name>_classes.tif``), scored by per-class Dice and IoU and, where the classes name a
boundary, by the protocol on its cells, or ``affinities`` (an affinity network's ``<name>_affinities.tif``, or the
``affinities`` of a Zarr output: :mod:`src.evaluation.affinity_files`), made into cells by
``postprocess=mutex_watershed`` (or ``mean_affinity``, ``learned_edges``) and scored as labels.
``auto`` takes a TIFF whose metadata names classes as a class map, one whose metadata holds offsets as
affinities, floats, 8-bit and {0, 1} images as probabilities and other integer images as labels.

Labels are binary (0 = membrane, 255 or 1 = interior) unless a data config's :class:`~src.data.labels.ClassMap`
is given (``src.score data=vnc2013``): then they are read in that data set's own convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.data.labels import ClassMap, binary_labels
from src.data.slices import parse_slices
from src.data.volume import open_volume, read_slices
from src.evaluation.affinity_files import affinity_offsets, read_affinities
from src.metrics.classes import class_scores
from src.metrics.isbi import THRESHOLDS, score_probabilities, score_segmentations
from src.postprocess.instances import postprocess_stack, reads_affinities
from src.utils.errors import UserError

KINDS = ("auto", "probability", "labels", "classes", "affinities")


def _as_probability(stack: np.ndarray, where: str) -> np.ndarray:
    if stack.dtype.kind == "f":
        if not np.isfinite(stack).all():
            raise UserError(f"prediction {where} holds NaN or infinite values; probabilities must lie in [0, 1]")
        low, high = float(stack.min()), float(stack.max())
        if low >= -1e-6 and high <= 1 + 1e-6:  # rounding of a sigmoid or softmax output
            return np.clip(stack, 0, 1).astype(np.float32)
        if low < 0 or high > 1:
            raise UserError(
                f"prediction {where} has values in [{low:g}, {high:g}]; probabilities must lie in [0, 1] "
                "(rescale it, or pass kind=labels if it holds numbered cells)"
            )
        return stack.astype(np.float32)
    if stack.dtype.kind in "iu":
        if stack.min() < 0:
            raise UserError(f"prediction {where} has negative values; expected probabilities or cell labels")
        if stack.max() <= 1:
            return stack.astype(np.float32)
        return (stack / np.iinfo(stack.dtype).max).astype(np.float32)
    raise UserError(f"prediction {where} has pixel type {stack.dtype}; expected integers or floats")


def _resolve_kind(stack: np.ndarray, kind: str) -> str:
    if kind not in KINDS:
        raise UserError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if stack.dtype.kind == "f" or stack.dtype == np.uint8 or stack.max() <= 1:
        return "probability"
    return "labels"


def score_arrays(
    prediction: np.ndarray,
    labels: np.ndarray,
    kind: str = "auto",
    invert: bool = False,
    thresholds: Sequence[float] = THRESHOLDS,
    slice_ids: Sequence[int] | None = None,
    workers: int = 1,
    postprocess: Any = None,
    where: str = "",
    class_map: ClassMap | None = None,
    label_path: str = "the label stack",
) -> dict:
    """Score an ``(N, H, W)`` prediction against ``(N, H, W)`` labels (binary, or in ``class_map``'s convention);
    see the module docstring."""
    if prediction.ndim == 2:
        prediction = prediction[None]
    if labels.ndim == 2:
        labels = labels[None]
    if prediction.shape != labels.shape:
        raise UserError(
            f"prediction {where} has shape {prediction.shape} but the labels have {labels.shape}; "
            "select matching slices with prediction_slices= and label_slices="
        )
    if kind == "classes":
        return _score_class_map(prediction, labels, class_map, slice_ids, workers, where, label_path)
    if class_map is not None:
        if class_map.boundary_index is None:
            raise UserError(
                f"data.classes name no boundary class, so only a class map can be scored (kind=classes); {where} is "
                "not one"
            )
        labels = class_map.cell_mask(class_map.encode(labels, label_path))
    else:
        labels = binary_labels(labels, label_path)
    kind = _resolve_kind(prediction, kind)
    result: dict[str, Any] = {"kind": kind}
    if kind == "labels":
        if prediction.dtype.kind not in "iu" or prediction.min() < 0:
            raise UserError(f"prediction {where} must hold non-negative integer cell labels for kind=labels")
        if invert or postprocess is not None:
            raise UserError("invert and postprocess apply to probabilities, not to kind=labels predictions")
        result.update(score_segmentations(prediction, labels, slice_ids, workers=workers))
        return result
    prob = _as_probability(prediction, where)
    if invert:
        prob = 1.0 - prob
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or any(not 0.0 <= t < 1.0 for t in thresholds):
        raise UserError(f"thresholds={list(thresholds)} must be a non-empty list of values in [0, 1)")
    result.update(score_probabilities(prob, labels, thresholds, slice_ids, workers=workers))
    if postprocess is not None:
        cells = postprocess_stack(postprocess, prob)
        result["postprocess"] = {
            "method": type(postprocess).__name__,
            **score_segmentations(cells, labels, slice_ids, workers=workers),
        }
    return result


def _score_class_map(
    prediction: np.ndarray,
    labels: np.ndarray,
    class_map: ClassMap | None,
    slice_ids: Sequence[int] | None,
    workers: int,
    where: str,
    label_path: str,
) -> dict:
    """Per-class Dice and IoU of a class map and, where the classes name a boundary, the protocol on its cells."""
    if class_map is None:
        raise UserError(
            f"prediction {where} is a class map: name the labels' classes with data=<the data config> "
            "(e.g. data=vnc2013) so they can be compared"
        )
    if prediction.dtype.kind not in "iu" or prediction.min() < 0 or prediction.max() >= class_map.num_classes:
        raise UserError(
            f"prediction {where} is not a class map of the {class_map.num_classes} classes of data.classes "
            f"({', '.join(class_map.names)}): it must hold class ids 0..{class_map.num_classes - 1}"
        )
    truth = class_map.encode(labels, label_path)
    ids = list(slice_ids) if slice_ids is not None else list(range(len(prediction)))
    result: dict[str, Any] = {
        "kind": "classes",
        "classes": {
            "names": class_map.names,
            **class_scores(prediction, truth, class_map.names),
            "per_slice": [
                {"slice": i, **{k: v for k, v in class_scores(p, t, class_map.names).items() if k in ("dice", "iou")}}
                for i, p, t in zip(ids, prediction, truth, strict=True)
            ],
        },
    }
    if class_map.boundary_index is not None:
        cells = (prediction != class_map.boundary_index).astype(np.float32)
        result["cells"] = {
            "what": f"pixels of any class but {class_map.boundary_class}, as a binary probability",
            **score_probabilities(cells, class_map.cell_mask(truth), (0.5,), slice_ids, workers=workers),
        }
    return result


def _affinities_or(kind: str, prediction: str | Path, key: str | None, postprocess: Any) -> str:
    """``affinities`` for affinities src.predict wrote (:mod:`src.evaluation.affinity_files`) under ``auto``, else
    ``kind``; a decoder of affinities is refused for any other prediction."""
    if kind == "auto" and affinity_offsets(prediction, key):
        kind = "affinities"
    if kind != "affinities" and reads_affinities(postprocess):
        raise UserError(
            f"the postprocess= chosen makes cells from affinities, and prediction {prediction} holds none: score "
            "those src.predict wrote for a network trained with model.target=affinities (<name>_affinities.tif, "
            "or prediction_key=affinities of a Zarr output)"
        )
    return kind


def score_files(
    prediction: str | Path,
    labels: str | Path,
    prediction_slices: Any = None,
    label_slices: Any = None,
    **kwargs: Any,
) -> dict:
    """Read the chosen slices of two volumes (any format :func:`open_volume` reads; ``prediction_key`` and
    ``label_key`` name datasets in containers) and score them (keyword arguments as :func:`score_arrays`)."""
    keys = kwargs.pop("prediction_key", None), kwargs.pop("label_key", None)
    kwargs["kind"] = _affinities_or(kwargs.get("kind", "auto"), prediction, keys[0], kwargs.get("postprocess"))
    if kwargs.get("kind") == "affinities":
        affinities, offsets = read_affinities(prediction, keys[0])
        saved_classes, pred_count = None, len(affinities)
    else:
        with open_volume(prediction, keys[0], "prediction", hint="check prediction= and prediction_key=") as volume:
            saved_classes = volume.metadata.get("classes")
            pred_count = len(volume)
    with open_volume(labels, keys[1], "label stack", hint="check labels= and label_key=") as volume:
        label_count = len(volume)
    class_map = kwargs.get("class_map")
    if kwargs.get("kind", "auto") == "auto" and saved_classes:
        kwargs["kind"] = "classes"
        if class_map is not None and list(saved_classes) != class_map.names:
            raise UserError(
                f"prediction {prediction} is a class map of {list(saved_classes)} but data.classes names "
                f"{class_map.names}; choose the data config the model was trained on"
            )
    pred_ids = parse_slices(prediction_slices, pred_count, "prediction_slices")
    label_ids = parse_slices(label_slices, label_count, "label_slices")
    if prediction_slices is None and label_slices is not None and pred_count == label_count:
        pred_ids = label_ids  # a prediction of the whole stack, scored on the chosen slices
    if len(pred_ids) != len(label_ids):
        raise UserError(
            f"{len(pred_ids)} prediction slices but {len(label_ids)} label slices; choose matching ranges "
            "with prediction_slices= and label_slices= (e.g. label_slices=24:30 for a 6-slice prediction)"
        )
    if kwargs.get("kind") == "affinities":
        pred_stack = decode_affinities(affinities[pred_ids], offsets, kwargs.pop("postprocess", None), prediction)
        kwargs["kind"] = "labels"
    else:
        pred_stack = read_slices(prediction, keys[0], pred_ids, "prediction", "check prediction= and prediction_key=")
    label_stack = read_slices(labels, keys[1], label_ids, "label stack", "check labels= and label_key=")
    result = score_arrays(
        pred_stack,
        label_stack,
        slice_ids=label_ids,
        where=str(prediction),
        label_path=str(labels),
        **kwargs,
    )
    return {
        "prediction": str(Path(prediction).resolve()),
        "labels": str(Path(labels).resolve()),
        "prediction_slices": pred_ids,
        "label_slices": label_ids,
        **result,
    }


def decode_affinities(affinities: np.ndarray, offsets: list, postprocess: Any, where: str | Path) -> np.ndarray:
    """Cells of each affinity slice by a post-processing that reads affinities (``postprocess=mutex_watershed``)."""
    if postprocess is None or not reads_affinities(postprocess):
        raise UserError(
            f"prediction {where} holds affinities (kind=affinities); choose how cells are made from them with "
            "postprocess=mutex_watershed, mean_affinity or learned_edges (with postprocess.classifier=RUN's "
            "edge_classifier.pkl)"
        )
    method = postprocess.with_offsets(offsets)
    return np.stack([method(slice_affinities) for slice_affinities in affinities])
