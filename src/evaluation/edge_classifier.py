"""Fitting a run's edge classifier (``postprocess=learned_edges``) after training: the training slices predicted
by the run's inference recipe, their fragments' edges learned against their labelled cells."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from src.data.labels import IGNORE
from src.evaluation.held_out import predict_slices
from src.inference.recipe import CLASSIFIER_FILE, needs_fitting
from src.postprocess.edge_models import truth_cells
from src.postprocess.instances import build_postprocess
from src.postprocess.learned_edges import save_classifier
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def with_fitted_edges(module, datamodule, trainer, recipe: dict, output_dir: Path) -> dict:
    """``recipe`` with its learned edges' classifier fitted on the training slices and written to
    ``output_dir/edge_classifier.pkl`` (named in the returned recipe); any other recipe as it is."""
    if not needs_fitting(recipe["postprocess"]):
        return recipe
    if datamodule.lazy:
        raise UserError(
            "postprocess=learned_edges fits its classifier on the training slices read whole, but these data are "
            "read lazily; set data.loading=memory or choose postprocess=mutex_watershed"
        )
    started = time.perf_counter()
    method = build_postprocess(recipe["postprocess"], module.offsets)
    outputs = predict_slices(module, datamodule.subset("train"), trainer, recipe)
    truths = [truth_cells(output["label"], module.boundary_class, IGNORE) for output in outputs]
    model = method.fit([output["affinities"] for output in outputs], truths)
    path = save_classifier(output_dir / CLASSIFIER_FILE, model, method)
    log.info(
        "edge classifier fitted on %d training slices in %.1f s: %s", len(outputs), time.perf_counter() - started, path
    )
    return {**recipe, "postprocess": {**recipe["postprocess"], "classifier": str(path)}}
