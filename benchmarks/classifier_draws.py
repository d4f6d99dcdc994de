"""How much of an affinity run's held-out score is its edge classifier's draw (docs/affinities.md).

    python benchmarks/classifier_draws.py RUN [RUN ...] [--draws 8] [--averaged 8] [--shapes]

For each finished run of ``experiment=isbi2012_cpu_affinities``, its training and held-out slices are predicted
once as ``src.eval`` predicts them (the run's checkpoint, data, precision and inference recipe), and the edges of
their fragments measured once. The learned edges' classifier is then fitted at random states 0 to DRAWS - 1 (each
stops early on its own random tenth of the edges; 0 is the run's own) and once as ``postprocess.classifiers=
AVERAGED``, and each decodes the held-out slices. ``--shapes`` fits and decodes with ``postprocess.shapes=true``
(the regions' shapes among the edges' features). Prints a markdown table per run: V_rand / V_info and each
held-out slice's V_rand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.config import PROJECT_ROOT

if str(PROJECT_ROOT) not in sys.path:  # run as a script, not from the root
    sys.path.insert(0, str(PROJECT_ROOT))
from src.data.labels import IGNORE  # noqa: E402
from src.evaluation.held_out import predict_slices, stacked  # noqa: E402
from src.inference.recipe import follow_recipe  # noqa: E402
from src.metrics.isbi import score_segmentations  # noqa: E402
from src.models.checkpoint import load_module  # noqa: E402
from src.postprocess.edge_models import fit_edge_classifier, truth_cells  # noqa: E402
from src.postprocess.instances import build_postprocess  # noqa: E402
from src.training.build import build_trainer  # noqa: E402


def run_slices(run: Path, shapes: bool = False) -> tuple[object, int, list[dict], list[dict]]:
    """The run's learned edges (its recipe's settings, unfitted), boundary class, and its training and held-out
    slices' outputs (:func:`~src.evaluation.held_out.predict_slices`)."""
    cfg = OmegaConf.load(run / "config.yaml")
    module = load_module(run / "checkpoints" / "last.ckpt")
    recipe, _ = follow_recipe(module.hparams.get("inference"), {})
    unfitted = {**recipe["postprocess"], "classifier": None, "classifiers": 1, "shapes": shapes}
    method = build_postprocess(unfitted, module.offsets)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    trainer = build_trainer(cfg, logger=False, callbacks=[])
    train, held = (predict_slices(module, datamodule.subset(split), trainer, recipe) for split in ("train", "test"))
    return method, module.boundary_class, train, held


def draw_scores(run: Path, draws: int, averaged: int, shapes: bool) -> dict[str, tuple[float, float, list[float]]]:
    """V_rand, V_info and the slices' V_rand of the held-out cells, for each random state and the average."""
    method, boundary, train, held = run_slices(run, shapes)
    truths = [truth_cells(output["label"], boundary, IGNORE) for output in train]
    x, y = method.training_edges([output["affinities"] for output in train], truths)
    _, labels, _ = stacked(held, boundary)
    models = {f"random state {state}": fit_edge_classifier(x, y, 1, state) for state in range(draws)}
    models[f"{averaged} averaged (`postprocess.classifiers={averaged}`)"] = fit_edge_classifier(x, y, averaged)
    scores = {}
    for name, model in models.items():
        cells = np.stack([method.with_model(model)(output["affinities"]) for output in held])
        stack = score_segmentations(cells, labels)
        scores[name] = stack["vrand"], stack["vinfo"], [row["vrand"] for row in stack["per_slice"]]
    return scores


def draws_table(scores: dict[str, tuple[float, float, list[float]]]) -> str:
    lines = ["| classifier | V_rand | V_info | each held-out slice's V_rand |", "| --- | ---: | ---: | --- |"]
    for name, (vrand, vinfo, slices) in scores.items():
        lines.append(f"| {name} | {vrand:.4f} | {vinfo:.4f} | {' '.join(f'{v:.3f}' for v in slices)} |")
    singles = np.array([s[:2] for name, s in scores.items() if name.startswith("random state")])
    lines.append(
        f"| random states: mean (min-max) | {singles[:, 0].mean():.4f} ({singles[:, 0].min():.4f}-"
        f"{singles[:, 0].max():.4f}) | {singles[:, 1].mean():.4f} | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished runs of experiment=isbi2012_cpu_affinities")
    parser.add_argument("--draws", type=int, default=8, help="random states 0 to DRAWS - 1, one classifier each")
    parser.add_argument("--averaged", type=int, default=8, help="postprocess.classifiers of the averaged fit")
    parser.add_argument("--shapes", action="store_true", help="the edges' features with the regions' shapes")
    args = parser.parse_args()
    for run in args.runs:
        scores = draw_scores(run.resolve(), args.draws, args.averaged, args.shapes)
        print(f"{run}:\n\n{draws_table(scores)}\n", flush=True)


if __name__ == "__main__":
    main()
