"""A Hydra callback that ends every multirun with a summary of its jobs (a cross-validation table for folds).

After the last job, ``summary.md`` and ``summary.json`` in the sweep folder list each job's overrides, its
test V_rand / V_info, the best validation score and its state (``ok`` or ``failed``), then the mean and
standard deviation over the jobs that finished: with ``-m data.fold=0,1,2,3,4`` that is k-fold
cross-validation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from src.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

COLUMNS = (("test/vrand", "test V_rand"), ("test/vinfo", "test V_info"), ("test/pixel_error", "test pixel error"))


def _job_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
        row: dict[str, Any] = {"job": int(job.name), "overrides": list(overrides), "state": "failed"}
        metrics_file = job / "metrics.json"
        if metrics_file.is_file() and not (job / "FAILED").exists():
            record = json.loads(metrics_file.read_text())
            row["state"] = "ok"
            row["optimized_metric"] = record.get("optimized_metric")
            row["optimized_value"] = record.get("optimized_value")
            row.update({key: record.get("metrics", {}).get(key) for key, _ in COLUMNS})
        elif (job / "FAILED").exists():
            row["error"] = (job / "FAILED").read_text().splitlines()[0]
        rows.append(row)
    # Show only what changes from job to job (the swept values), not the overrides all jobs share.
    shared = set.intersection(*(set(r["overrides"]) for r in rows)) if len(rows) > 1 else set()
    for row in rows:
        row["overrides"] = " ".join(o for o in row["overrides"] if o not in shared)
    return rows


def summarise(sweep_dir: str | Path) -> dict[str, Any]:
    """Summary of the jobs in ``sweep_dir``, written to ``summary.json`` and ``summary.md`` there."""
    sweep_dir = Path(sweep_dir)
    rows = _job_rows(sweep_dir)
    done = [r for r in rows if r["state"] == "ok"]
    stats = {}
    for key in [k for k, _ in COLUMNS] + ["optimized_value"]:
        values = [r[key] for r in done if r.get(key) is not None]
        if values:
            stats[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}
    summary = {"jobs": rows, "finished": len(done), "failed": len(rows) - len(done), "stats": stats}
    write_text_atomic(sweep_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(sweep_dir / "summary.md", _markdown(summary))
    return summary


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


def _markdown(summary: dict[str, Any]) -> str:
    metric = next((r["optimized_metric"] for r in summary["jobs"] if r.get("optimized_metric")), "val score")
    header = ["job", "swept values", "state", *(name for _, name in COLUMNS), f"best {metric}"]
    lines = [
        "# Sweep summary",
        "",
        f"{summary['finished']} of {len(summary['jobs'])} jobs finished"
        + (f"; {summary['failed']} failed (see FAILED in their folders)" if summary["failed"] else "")
        + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in summary["jobs"]:
        cells = [str(r["job"]), f"`{r['overrides']}`", r["state"], *(_fmt(r.get(k)) for k, _ in COLUMNS)]
        lines.append("| " + " | ".join([*cells, _fmt(r.get("optimized_value"))]) + " |")
    stats = summary["stats"]
    if stats:
        cells = [f"{stats[k]['mean']:.4f} ± {stats[k]['std']:.4f}" if k in stats else "–" for k, _ in COLUMNS]
        best = stats.get("optimized_value")
        cells.append(f"{best['mean']:.4f} ± {best['std']:.4f}" if best else "–")
        lines.append("| mean ± std | | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class SweepSummary(Callback):
    """Writes the sweep summary when a multirun ends (registered in ``conf/hydra/default.yaml``)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        summary = summarise(sweep_dir)
        log.info(
            "sweep summary (%d finished, %d failed): %s",
            summary["finished"],
            summary["failed"],
            sweep_dir / "summary.md",
        )
        print((sweep_dir / "summary.md").read_text())
        wandb = OmegaConf.select(config, "logger.wandb", default=None)
        if wandb is not None and summary["finished"]:
            log_to_wandb(summary, wandb, sweep_dir, str(config.hydra.job.name))


def sweep_group(job_name: str, sweep_dir: str | Path) -> str:
    """The W&B group every run of a multirun shares (``logger.wandb.group``): ``<task>-<sweep folder name>``."""
    return f"{job_name}-{Path(sweep_dir).name}"


def log_to_wandb(summary: dict[str, Any], wandb_config: DictConfig, sweep_dir: Path, job_name: str) -> None:
    """One more run in the sweep's W&B group (job type ``sweep-summary``): the mean and standard deviation over
    the finished jobs in its summary and the table of jobs, so the group reads as a cross-validation."""
    import wandb

    from src.config.resolvers import wandb_offline

    run = wandb.init(
        project=OmegaConf.select(wandb_config, "project", default="em-unet"),
        group=sweep_group(job_name, sweep_dir),
        job_type="sweep-summary",
        name=f"{sweep_dir.name} summary",
        dir=str(sweep_dir),
        mode="offline" if wandb_offline() else "online",
        reinit="create_new",
    )
    for key, value in summary["stats"].items():
        run.summary.update({f"{key}/mean": value["mean"], f"{key}/std": value["std"], f"{key}/n": value["n"]})
    run.summary.update({"finished": summary["finished"], "failed": summary["failed"]})
    columns = ["job", "overrides", "state", *(key for key, _ in COLUMNS)]
    rows = [[row["job"], row["overrides"], row["state"], *(row.get(k) for k, _ in COLUMNS)] for row in summary["jobs"]]
    run.log({"jobs": wandb.Table(columns=columns, data=rows)})
    run.finish()
