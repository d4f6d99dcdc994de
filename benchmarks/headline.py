"""The README's headline results: the `make train` recipe run with several seeds, scored on held-out fold 4.

    python benchmarks/headline.py --seeds 12345,2,3            # run them (one after the other), then write
    python benchmarks/headline.py --runs logs/train/runs/A ...  # take finished runs of the recipe instead

Each seed is a real `python -m src.train experiment=isbi2012_cpu seed=S` (what `make train` runs). From each run's
metrics.json it takes the held-out scores of the prediction training leaves: the recipe's contour map (the scored
prediction), the probability itself (threshold sweep) and the cells. The rows go to docs/results.json (with the
machine, commit and date of each run) and the table, mean ± standard deviation with each seed's value, replaces
the block between the headline markers in README.md (tests/test_readme.py checks the two agree).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from src.config import PROJECT_ROOT
from src.config.hardware import cpu_description

RESULTS = PROJECT_ROOT / "docs" / "results.json"
README = PROJECT_ROOT / "README.md"
START, END = "<!-- headline:start -->", "<!-- headline:end -->"
EXPERIMENT = "isbi2012_cpu"
# What each row of the table scores, and where metrics.json holds it.
ROWS = (
    ("contour map of the agglomeration (`test_contours.tif`, the recipe's scored prediction)", "contours"),
    ("the network's probability (`test_probability.tif`, threshold sweep)", "threshold"),
    ("cells: the contour map cut at 0.55 (`test_cells.tif`)", "postprocess"),
)


def run_seed(seed: int, log_dir: Path, experiment: str = EXPERIMENT, *extra: str) -> Path:
    """Train ``experiment`` with ``seed`` (and ``extra`` overrides) alone on the machine; the run's folder."""
    started = time.time()
    overrides = [f"experiment={experiment}", f"seed={seed}", f"paths.log_dir={log_dir}", *extra]
    result = subprocess.run([sys.executable, "-m", "src.train", *overrides], cwd=PROJECT_ROOT, text=True)
    if result.returncode != 0:
        raise SystemExit(f"seed {seed} failed (exit {result.returncode})")
    runs = [p for p in (log_dir / "train" / "runs").iterdir() if p.stat().st_mtime >= started]
    return max(runs, key=lambda p: p.stat().st_mtime)


def row_of(run: Path) -> dict:
    """One run's scores, seed, steps, commit, date and CPU."""
    config = OmegaConf.load(run / "config.yaml")
    overrides = OmegaConf.load(run / ".hydra" / "overrides.yaml")
    if f"experiment={EXPERIMENT}" not in overrides or any(
        o.split("=")[0] not in ("experiment", "seed", "paths.log_dir") for o in overrides
    ):
        raise SystemExit(f"{run} is not a run of the recipe as make train runs it (overrides: {list(overrides)})")
    metrics = json.loads((run / "metrics.json").read_text())
    held = metrics["held_out"]
    info = json.loads((run / "run_info.json").read_text())
    return {
        "seed": config.seed,
        "run": run.name,
        "steps": metrics["global_step"],
        "commit": (info.get("git_commit") or "")[:7],
        "machine": info.get("cpu") or cpu_description(),  # runs recorded before run_info held the CPU: this one
        **{f"{key}_{score}": held[key][score] for _, key in ROWS for score in ("vrand", "vinfo")},
    }


def _cell(rows: list[dict], key: str) -> str:
    """Mean ± standard deviation over the runs, then each seed's runs."""
    values = [r[key] for r in rows]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    by_seed: dict = {}
    for row in rows:
        by_seed.setdefault(row["seed"], []).append(f"{row[key]:.4f}")
    each = "; ".join(f"{seed}: {', '.join(v)}" for seed, v in by_seed.items())
    return f"{statistics.mean(values):.4f} ± {spread:.4f} ({each})"


def _seeds(rows: list[dict]) -> str:
    counts = {}
    for row in rows:
        counts[row["seed"]] = counts.get(row["seed"], 0) + 1
    return ", ".join(f"{seed} ({n} runs)" if n > 1 else str(seed) for seed, n in counts.items())


def table(rows: list[dict]) -> str:
    """The README's block: what was run, where and when, and one line per scored prediction."""
    rows = sorted(rows, key=lambda r: (str(r["seed"]), r["run"]))
    seeds = _seeds(rows)
    dates = sorted({r["run"][:10] for r in rows})
    commits = ", ".join(sorted({r["commit"] for r in rows}))
    machines = "; ".join(sorted({r["machine"] for r in rows}))
    lines = [
        f"`make train` (`python -m src.train experiment={EXPERIMENT}`), seeds {seeds}; held-out fold 4 "
        f"(slices 24-29), {round(statistics.mean(r['steps'] for r in rows))} steps; {', '.join(dates)}, "
        f"commit{'s' if ',' in commits else ''} {commits}, {machines}. Mean ± standard deviation over the runs "
        "(each seed's runs):",
        "",
        "| prediction scored | V_rand | V_info |",
        "| --- | ---: | ---: |",
    ]
    for label, key in ROWS:
        vrand, vinfo = _cell(rows, f"{key}_vrand"), _cell(rows, f"{key}_vinfo")
        lines.append(f"| {label} | {vrand} | {vinfo} |")
    return "\n".join(lines)


def replace_block(text: str, block: str, start: str = START, end: str = END) -> str:
    """``text`` with what lies between the ``start`` and ``end`` markers replaced by ``block``."""
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="", help="comma-separated seeds to run")
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="finished runs of the recipe")
    parser.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / "logs" / "headline")
    args = parser.parse_args()
    runs = list(args.runs) + [run_seed(int(s), args.log_dir) for s in args.seeds.split(",") if s]
    if not runs:
        raise SystemExit("give --seeds to run or --runs of finished runs")
    rows = [row_of(run) for run in runs]
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    README.write_text(replace_block(README.read_text(), table(rows)))
    print(table(rows))


if __name__ == "__main__":
    main()
