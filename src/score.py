"""Score any prediction stack against labels by the ISBI 2012 protocol: ``python -m src.score``.

    python -m src.score prediction=PRED.tif labels=LABELS.tif [label_slices=24:30] [postprocess=watershed]

prints one JSON object: ``vrand``, ``vinfo`` (best over the threshold sweep, with ``threshold`` and
``vinfo_threshold``), ``pixel_error``, the sweep (``per_threshold``) and each slice's scores (``per_slice``).
The same is importable: :func:`score_files` for TIFF paths, :func:`score_arrays` for arrays.

What the prediction holds (``kind``): ``probability`` of cell interior (floats in [0, 1], or 8/16-bit integers
scaled by their maximum; binary masks are probabilities of 0 and 1), or ``labels``: cells numbered 1..n with
0 for borders, scored as they are (thinned, no sweep). ``auto`` takes floats, 8-bit and {0, 1} images as
probabilities and other integer images as labels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.data.stack_io import binary_labels, read_stack
from src.metrics.isbi import THRESHOLDS, score_probabilities, score_segmentations
from src.postprocess.instances import postprocess_stack
from src.utils.cli import run_task
from src.utils.errors import UserError
from src.utils.run_dir import write_json_atomic

KINDS = ("auto", "probability", "labels")


def parse_slices(spec: Any, count: int, what: str) -> list[int]:
    """Slice indices from ``None`` (all), an int, a list of ints, or a ``"start:stop[:step]"`` string."""
    if spec is None:
        return list(range(count))
    if isinstance(spec, str):
        try:
            parts = [int(p) if p.strip() else None for p in spec.split(":")]
            if len(parts) > 3 or (len(parts) == 1 and parts[0] is None):
                raise ValueError
        except ValueError:
            raise UserError(f"{what}={spec!r} is not a slice range; write start:stop (e.g. 24:30) or a list") from None
        if len(parts) == 1:
            indices = [parts[0]]
        else:
            if any(p is not None and not -count <= p <= count for p in parts[:2]):
                raise UserError(f"{what}={spec!r} reaches past the stack's {count} slices (0 to {count - 1})")
            indices = list(range(count))[slice(*parts)]
    elif isinstance(spec, int):
        indices = [spec]
    else:
        indices = [int(i) for i in spec]
    if not indices:
        raise UserError(f"{what}={spec!r} selects no slices of a stack of {count}")
    bad = [i for i in indices if not -count <= i < count]
    if bad:
        raise UserError(f"{what}={spec!r} names slice {bad[0]}, but the stack has {count} slices (0 to {count - 1})")
    return [i % count for i in indices]


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
) -> dict:
    """Score an ``(N, H, W)`` prediction against ``(N, H, W)`` binary labels; see the module docstring."""
    if prediction.ndim == 2:
        prediction = prediction[None]
    if labels.ndim == 2:
        labels = labels[None]
    if prediction.shape != labels.shape:
        raise UserError(
            f"prediction {where} has shape {prediction.shape} but the labels have {labels.shape}; "
            "select matching slices with prediction_slices= and label_slices="
        )
    labels = binary_labels(labels)
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


def score_files(
    prediction: str | Path,
    labels: str | Path,
    prediction_slices: Any = None,
    label_slices: Any = None,
    **kwargs: Any,
) -> dict:
    """Read two TIFF stacks, select slices and score them (keyword arguments as :func:`score_arrays`)."""
    pred_stack = read_stack(prediction, "prediction", hint="check prediction=")
    label_stack = read_stack(labels, "label stack", hint="check labels=")
    pred_ids = parse_slices(prediction_slices, len(pred_stack), "prediction_slices")
    label_ids = parse_slices(label_slices, len(label_stack), "label_slices")
    if prediction_slices is None and label_slices is not None and len(pred_stack) == len(label_stack):
        pred_ids = label_ids  # a prediction of the whole stack, scored on the chosen slices
    if len(pred_ids) != len(label_ids):
        raise UserError(
            f"{len(pred_ids)} prediction slices but {len(label_ids)} label slices; choose matching ranges "
            "with prediction_slices= and label_slices= (e.g. label_slices=24:30 for a 6-slice prediction)"
        )
    result = score_arrays(
        pred_stack[pred_ids], label_stack[label_ids], slice_ids=label_ids, where=str(prediction), **kwargs
    )
    return {
        "prediction": str(Path(prediction).resolve()),
        "labels": str(Path(labels).resolve()),
        "prediction_slices": pred_ids,
        "label_slices": label_ids,
        **result,
    }


def score(cfg: DictConfig) -> dict:
    output = Path(cfg.output) if cfg.output else None
    if output is not None and output.exists() and not cfg.overwrite:
        raise UserError(f"output {output} exists; choose another path or pass overwrite=true")
    slices = {
        k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
        for k, v in (("prediction_slices", cfg.prediction_slices), ("label_slices", cfg.label_slices))
    }
    result = score_files(
        cfg.prediction,
        cfg.labels,
        **slices,
        kind=cfg.kind,
        invert=cfg.invert,
        thresholds=list(cfg.thresholds),
        workers=cfg.workers,
        postprocess=instantiate(cfg.postprocess) if cfg.get("postprocess") else None,
    )
    if output is not None:
        write_json_atomic(output, result)
    print(json.dumps(result, indent=None if cfg.compact else 2))
    return result


def main() -> None:
    run_task(score, "score")


if __name__ == "__main__":
    main()
