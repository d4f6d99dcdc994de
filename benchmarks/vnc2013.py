"""Five classes on VNC 2013: the CPU recipe's held-out per-class scores, and fine-tuning against training from scratch.

    python benchmarks/vnc2013.py --seeds 1,2,3 --init-from RUN/checkpoints/last.ckpt   # run them, then write
    python benchmarks/vnc2013.py --runs logs/train/runs/A ...                            # take finished runs

Each run is a real `python -m src.train experiment=vnc2013_cpu seed=S`, and with ``--init-from`` the same with
`model.init_from=` a trained checkpoint (the ISBI 2012 `make train` network), same steps. From each run's
metrics.json it takes the class map's per-class Dice and IoU on the held-out sections and the membranes' V_rand /
V_info. The rows go to docs/vnc2013_results.json (machine, commit, date of each run); the scratch runs' per-class
table replaces the block between the vnc2013 markers in README.md, and both tables the block in docs/vnc2013.md
(tests/test_readme.py checks they agree with the JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from omegaconf import OmegaConf

from src.config import PROJECT_ROOT

if str(PROJECT_ROOT) not in sys.path:  # run as a script (python benchmarks/vnc2013.py), not from the root
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks import headline  # noqa: E402

RESULTS = PROJECT_ROOT / "docs" / "vnc2013_results.json"
README = PROJECT_ROOT / "README.md"
PAGE = PROJECT_ROOT / "docs" / "vnc2013.md"
START, END = "<!-- vnc2013:start -->", "<!-- vnc2013:end -->"
EXPERIMENT = "vnc2013_cpu"
CLASSES = ("membrane", "glia", "mitochondria", "synapse", "interior")


def row_of(run: Path) -> dict:
    """One run's per-class scores, membrane V_rand / V_info, seed, start, steps, commit, date and CPU."""
    config = OmegaConf.load(run / "config.yaml")
    overrides = list(OmegaConf.load(run / ".hydra" / "overrides.yaml"))
    allowed = ("experiment", "seed", "paths.log_dir", "model.init_from")
    if f"experiment={EXPERIMENT}" not in overrides or any(o.split("=")[0] not in allowed for o in overrides):
        raise SystemExit(f"{run} is not a run of the recipe (overrides: {overrides})")
    metrics = json.loads((run / "metrics.json").read_text())
    held = metrics["held_out"]
    info = json.loads((run / "run_info.json").read_text())
    return {
        "seed": config.seed,
        "start": "fine-tuned from ISBI 2012" if config.model.get("init_from") else "from scratch",
        "init_from": config.model.get("init_from"),
        "run": run.name,
        "steps": metrics["global_step"],
        "commit": (info.get("git_commit") or "")[:7],
        "machine": info.get("cpu") or "",
        "slices": held["slices"],
        "dice": held["classes"]["dice"],
        "iou": held["classes"]["iou"],
        "mean_dice": held["classes"]["mean_dice"],
        "mean_iou": held["classes"]["mean_iou"],
        "vrand": held["threshold"]["vrand"],
        "vinfo": held["threshold"]["vinfo"],
    }


def _cell(values: list[float], seeds: list) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    each = ", ".join(f"{v:.3f}" for v in values)
    return f"{statistics.mean(values):.3f} ± {spread:.3f} ({each})"


def _about(rows: list[dict]) -> str:
    dates = ", ".join(sorted({r["run"][:10] for r in rows}))
    commits = ", ".join(sorted({r["commit"] for r in rows}))
    machines = "; ".join(sorted({r["machine"] for r in rows}))
    slices = rows[0]["slices"]
    steps = round(statistics.mean(r["steps"] for r in rows))
    plural = "s" if "," in commits else ""
    return (
        f"`python -m src.train experiment={EXPERIMENT}`, seeds {', '.join(str(r['seed']) for r in rows)}; held-out "
        f"sections {slices[0]}-{slices[-1]} (never trained on), {steps} steps; {dates}, commit{plural} {commits}, "
        f"{machines}"
    )


def class_table(rows: list[dict], iou: bool = True) -> str:
    """Per-class Dice (and IoU) of the class map, mean ± standard deviation over the runs (each run's value)."""
    rows = sorted(rows, key=lambda r: str(r["seed"]))
    seeds = [r["seed"] for r in rows]
    lines = [
        f"{_about(rows)}. Class map on the held-out sections, mean ± standard deviation over the seeds (each seed):",
        "",
        "| class | Dice | IoU |" if iou else "| class | Dice |",
        "| --- | ---: | ---: |" if iou else "| --- | ---: |",
    ]
    for name in [*CLASSES, "mean"]:
        key = name == "mean"
        dice = [r["mean_dice"] if key else r["dice"].get(name, 0.0) for r in rows]
        cells = [_cell(dice, seeds)]
        if iou:
            cells.append(_cell([r["mean_iou"] if key else r["iou"].get(name, 0.0) for r in rows], seeds))
        label = "**mean**" if key else name
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def start_table(rows: list[dict]) -> str:
    """From scratch against fine-tuned from a trained network: membrane and mean Dice, membranes' V_rand."""
    lines = [
        "| start | membrane Dice | mean Dice | synapse Dice | V_rand (membranes) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for start in sorted({r["start"] for r in rows}, reverse=True):
        group = sorted((r for r in rows if r["start"] == start), key=lambda r: str(r["seed"]))
        seeds = [r["seed"] for r in group]
        cells = [
            _cell([r["dice"].get("membrane", 0.0) for r in group], seeds),
            _cell([r["mean_dice"] for r in group], seeds),
            _cell([r["dice"].get("synapse", 0.0) for r in group], seeds),
            _cell([r["vrand"] for r in group], seeds),
        ]
        lines.append(f"| {start} (seeds {', '.join(str(s) for s in seeds)}) | {' | '.join(cells)} |")
    return "\n".join(lines)


def page_block(rows: list[dict]) -> str:
    scratch = [r for r in rows if r["start"] == "from scratch"]
    parts = [class_table(scratch)]
    if len({r["start"] for r in rows}) > 1:
        parts += ["", "Fine-tuned (`model.init_from=` the ISBI 2012 `make train` checkpoint) against from scratch:", ""]
        parts.append(start_table(rows))
    return "\n".join(parts)


def replace_block(text: str, block: str) -> str:
    return headline.replace_block(text, block, START, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="", help="comma-separated seeds to run")
    parser.add_argument("--init-from", default=None, help="a trained checkpoint: also run each seed fine-tuned")
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="finished runs of the recipe")
    parser.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / "logs" / "vnc2013")
    args = parser.parse_args()
    runs = list(args.runs)
    for seed in (int(s) for s in args.seeds.split(",") if s):
        runs.append(headline.run_seed(seed, args.log_dir, EXPERIMENT))
        if args.init_from:
            runs.append(headline.run_seed(seed, args.log_dir, EXPERIMENT, f"model.init_from={args.init_from}"))
    if not runs:
        raise SystemExit("give --seeds to run or --runs of finished runs")
    rows = [row_of(run) for run in runs]
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    scratch = [r for r in rows if r["start"] == "from scratch"]
    README.write_text(replace_block(README.read_text(), class_table(scratch, iou=False)))
    PAGE.write_text(replace_block(PAGE.read_text(), page_block(rows)))
    print(page_block(rows))


if __name__ == "__main__":
    main()
