"""Test a checkpoint on the held-out slices: ``python -m src.eval ckpt_path=...``.

Prints the headline metrics as JSON and writes, in the run directory, ``metrics.json`` (overall, the threshold
sweep, per slice, and each post-processing method's scores), ``report.md`` (the same as tables) and
``figures/test_slices.png`` (input, label, output and merge/split errors).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.inference.stack_stream import StackWriter
from src.inference.tiling import dihedral, dihedral_inverse, tta_transforms
from src.metrics.isbi import score_probabilities, score_segmentations
from src.models.checkpoint import load_module
from src.models.module import SegmentationModule
from src.postprocess.instances import postprocess_stack
from src.utils.cli import run_task
from src.utils.figures import results_figure
from src.utils.instantiate import build_trainer, instantiate_group
from src.utils.report import markdown_report
from src.utils.run_dir import save_run_record, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

PROTOCOL = ("vrand", "vinfo", "threshold", "vinfo_threshold", "pixel_error", "per_threshold", "per_slice")
PIXEL_METRICS = ("dice", "iou", "accuracy", "loss")


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
            views = [dihedral_inverse(module.interior_probability(dihedral(image, t)), t).float() for t in tta]
            prob = torch.stack(views).mean(dim=0)[0]
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


def score_postprocessing(cfg: DictConfig, outputs: list[dict[str, np.ndarray]]) -> dict[str, dict]:
    """Each configured post-processing method's labelled cells, scored by the ISBI protocol."""
    if not cfg.get("postprocess"):
        return {}
    probs, labels, ids = stacked(outputs)
    results = {}
    for name, node in cfg.postprocess.items():
        params = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "_target_"}
        scores = score_segmentations(postprocess_stack(instantiate(node), probs), labels, ids)
        description = ", ".join(f"{k}={v}" for k, v in params.items())
        results[name] = {"params": params, "description": description, **scores}
    return results


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
    datamodule: L.LightningDataModule,
    trainer: L.Trainer,
    postprocess: DictConfig | None,
    tta: Sequence[int],
    output_dir: Path,
) -> dict:
    """Predict the test slices (with ``tta``), post-process them, score both and write them (see write_held_out).

    Returns the threshold sweep's scores, the post-processed cells' scores (and, for a post-processing with a
    contour map such as :class:`~src.postprocess.agglomeration.Agglomeration`, the sweep of that map) and the
    files written.
    """
    outputs = predict_slices(module, datamodule._subset("test"), trainer, tta)
    probs, labels, ids = stacked(outputs)
    sweep_keys = ("vrand", "vinfo", "threshold", "vinfo_threshold")
    sweep = score_probabilities(probs, labels, slice_ids=ids, workers=0)
    result = {"tta": list(tta), "threshold": {k: sweep[k] for k in sweep_keys}}
    cells = contours = None
    if postprocess:
        method = instantiate(postprocess)
        if hasattr(method, "contours"):
            contours = np.stack([method.contours(prob) for prob in probs])
            cells = np.stack([method.cut(contour) for contour in contours])
            contour_sweep = score_probabilities(contours, labels, slice_ids=ids, workers=0)
            result["contours"] = {k: contour_sweep[k] for k in sweep_keys}
        else:
            cells = postprocess_stack(method, probs)
        scores = score_segmentations(cells, labels, ids, workers=0)
        result["postprocess"] = {
            "method": postprocess["_target_"].rsplit(".", 1)[-1],
            "vrand": scores["vrand"],
            "vinfo": scores["vinfo"],
            "per_slice": scores["per_slice"],
        }
    result["files"] = write_held_out(output_dir, probs, labels, cells, contours)
    return result


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
    outputs = predict_slices(module, datamodule._subset("test"), trainer, tta)
    if tta != (0,):  # the protocol's sweep is rescored on the test-time-augmented probabilities
        probs, labels, ids = stacked(outputs)
        sweep = score_probabilities(probs, labels, slice_ids=ids, workers=0)
        result.update({key: sweep[key] for key in PROTOCOL})
    result["tta"] = list(tta)
    result["postprocess"] = score_postprocessing(cfg, outputs)
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
