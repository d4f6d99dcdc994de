"""Test a checkpoint on the held-out slices: ``python -m src.eval ckpt_path=...``.

Prints the headline metrics as JSON and writes, in the run directory, ``metrics.json`` (overall, the threshold
sweep, per slice, and each post-processing method's scores), ``report.md`` (the same as tables) and
``figures/test_slices.png`` (input, label, output and merge/split errors).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.evaluation.figures import results_figure
from src.evaluation.held_out import predict_slices, score_method, stacked
from src.evaluation.report import markdown_report
from src.inference.tta import tta_transforms
from src.metrics.isbi import score_probabilities
from src.models.checkpoint import load_module
from src.training.build import build_trainer, instantiate_group
from src.utils.atomic import write_json_atomic, write_text_atomic
from src.utils.cli import run_task
from src.utils.run_record import save_run_record

log = logging.getLogger(__name__)

PROTOCOL = ("vrand", "vinfo", "threshold", "vinfo_threshold", "pixel_error", "per_threshold", "per_slice")
PIXEL_METRICS = ("dice", "iou", "accuracy", "loss")


def score_postprocessing(methods: DictConfig | None, probs, labels, ids) -> dict[str, dict]:
    """Each configured post-processing method's labelled cells, scored by the ISBI protocol."""
    results = {}
    for name, node in (methods or {}).items():
        params = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "_target_"}
        scores = score_method(instantiate(node), probs, labels, ids)
        scores = {k: v for k, v in scores.items() if k not in ("cells", "contour_map")}
        results[name] = {"params": params, "description": ", ".join(f"{k}={v}" for k, v in params.items()), **scores}
    return results


def evaluate(cfg: DictConfig) -> dict:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    module = load_module(cfg.ckpt_path)
    datamodule = instantiate(cfg.data)
    trainer = build_trainer(cfg, logger=instantiate_group(cfg.get("logger")) or False, callbacks=[])
    if trainer.local_rank == 0:
        datamodule.prepare_data()
    output_dir = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        save_run_record(output_dir, cfg)
    trainer.test(module, datamodule=datamodule)
    if not trainer.is_global_zero:
        return {}
    logged = {key: float(value) for key, value in trainer.callback_metrics.items()}
    result: dict = {key: module.test_report[key] for key in PROTOCOL}
    result.update({key: logged[f"test/{key}"] for key in PIXEL_METRICS if f"test/{key}" in logged})
    result.update(checkpoint=str(Path(cfg.ckpt_path).resolve()), slices=datamodule.splits["test"])

    tta = tta_transforms(cfg.tta)
    outputs = predict_slices(module, datamodule.subset("test"), trainer, tta)
    probs, labels, ids = stacked(outputs)
    if tta != (0,):  # the protocol's sweep is rescored on the test-time-augmented probabilities
        sweep = score_probabilities(probs, labels, slice_ids=ids, workers=0)
        result.update({key: sweep[key] for key in PROTOCOL})
    result["tta"] = list(tta)
    result["postprocess"] = score_postprocessing(cfg.get("postprocess"), probs, labels, ids)
    candidates = {"threshold": result["vrand"], **{k: v["vrand"] for k, v in result["postprocess"].items()}}
    result["best_method"] = max(candidates, key=candidates.get)

    figure = None
    if cfg.figure_slices > 0:
        path = results_figure(
            outputs[: cfg.figure_slices],
            output_dir / "figures" / "test_slices.png",
            title=f"held-out slices, V_rand {result['vrand']:.4f}",
            threshold=result["threshold"],
        )
        figure = str(path.relative_to(output_dir))
    write_json_atomic(output_dir / "metrics.json", result)
    write_text_atomic(output_dir / "report.md", markdown_report(result, figure))
    headline = {k: v for k, v in result.items() if k not in ("per_slice", "per_threshold", "postprocess")}
    headline["postprocess"] = {k: {"vrand": v["vrand"], "vinfo": v["vinfo"]} for k, v in result["postprocess"].items()}
    print(json.dumps(headline, indent=2))
    log.info("metrics, report and figure written to %s", output_dir)
    return result


def main() -> None:
    run_task(evaluate, "eval")


if __name__ == "__main__":
    main()
