"""Score any prediction stack against labels by the ISBI 2012 protocol: ``python -m src.score``.

    python -m src.score prediction=PRED.tif labels=LABELS.tif [label_slices=24:30] [postprocess=watershed]
    python -m src.score prediction=out/stack_classes.tif labels=LABELS.tif data=vnc2013

prints one JSON object: ``vrand``, ``vinfo`` (best over the threshold sweep, with ``threshold`` and
``vinfo_threshold``), ``pixel_error``, the sweep (``per_threshold``) and each slice's scores (``per_slice``); for a
class map, ``classes`` (Dice and IoU per class, their means) and ``cells`` (the protocol on its boundary class).
``data=`` names the labels' classes (the data config's ``classes``); without it labels are binary.
The same is importable from :mod:`src.evaluation.scoring` (``score_files``, ``score_arrays``).
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.data.labels import class_map_of
from src.evaluation.scoring import score_files
from src.utils.atomic import write_json_atomic
from src.utils.cli import run_task
from src.utils.errors import UserError


def score(cfg: DictConfig) -> dict:
    output = Path(cfg.output) if cfg.output else None
    if output is not None and output.exists() and not cfg.overwrite:
        raise UserError(f"output {output} exists; choose another path or pass overwrite=true")
    if cfg.workers < 0:
        raise UserError(f"workers={cfg.workers} must be 0 (one process per CPU core) or more")
    slices = {
        k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
        for k, v in (("prediction_slices", cfg.prediction_slices), ("label_slices", cfg.label_slices))
    }
    result = score_files(
        cfg.prediction,
        cfg.labels,
        **slices,
        prediction_key=cfg.prediction_key,
        label_key=cfg.label_key,
        kind=cfg.kind,
        invert=cfg.invert,
        thresholds=list(cfg.thresholds),
        workers=cfg.workers,
        postprocess=instantiate(cfg.postprocess) if cfg.get("postprocess") else None,
        class_map=class_map_of(cfg.data) if cfg.get("data") else None,
    )
    if output is not None:
        write_json_atomic(output, result)
    print(json.dumps(result, indent=None if cfg.compact else 2))
    return result


def main() -> None:
    run_task(score, "score")


if __name__ == "__main__":
    main()
