"""Test a checkpoint on the held-out slices: ``python -m src.eval ckpt_path=...``.

Prints the metrics as JSON and writes ``metrics.json`` (overall and per slice) in the run directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.models.checkpoint import load_module
from src.utils.cli import run_task
from src.utils.instantiate import build_trainer, instantiate_group
from src.utils.run_dir import save_run_record, write_json_atomic

log = logging.getLogger(__name__)

HEADLINE = (
    "vrand",
    "vinfo",
    "pixel_error",
    "threshold",
    "vinfo_threshold",
    "dice",
    "iou",
    "accuracy",
    "loss",
)


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
    logged = {key: float(value) for key, value in trainer.callback_metrics.items()}
    result = {key: logged[f"test/{key}"] for key in HEADLINE if f"test/{key}" in logged}
    result.update(
        checkpoint=str(Path(cfg.ckpt_path).resolve()),
        slices=datamodule.splits["test"],
        per_slice=module.test_per_slice,
    )
    if trainer.is_global_zero:
        write_json_atomic(output_dir / "metrics.json", result)
        print(json.dumps({k: v for k, v in result.items() if k != "per_slice"}, indent=2))
        log.info("metrics written to %s", output_dir / "metrics.json")
    return result


def main() -> None:
    run_task(evaluate, "eval")


if __name__ == "__main__":
    main()
