"""The affinity recipe against today's recipe, on the same held-out folds and seeds (docs/affinities.md).

    python benchmarks/affinities.py --folds 4 --seeds 12345,2,3          # fold 4, three seeds, both recipes
    python benchmarks/affinities.py --folds 0,1,2,3,4 --seeds 12345      # 5-fold cross-validation
    python benchmarks/affinities.py --adopt RUN_DIR ...                  # take finished runs instead

Every run is a real ``python -m src.train experiment=E seed=S data.fold=F trainer.max_time=null``, one after the
other. ``trainer.max_time=null``: both recipes stop at their 1500 steps, not at a clock another process on the
machine could slow down (on a quiet 2-core machine both finish inside the 10 minutes). From each run's
metrics.json it keeps the headline (the recipe's scored output: the agglomeration's contour map, or the mutex
watershed's cells), the class probability's threshold sweep and the seconds per slice the post-processing took.
Rows go to docs/affinities_results.json (finished runs are kept, so an interrupted benchmark resumes); the tables
replace the blocks between the markers in docs/affinities.md (every score) and README.md (a summary).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from src.config import PROJECT_ROOT

if str(PROJECT_ROOT) not in sys.path:  # run as a script (python benchmarks/affinities.py), not from the root
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks.headline import replace_block, run_seed  # noqa: E402
from src.postprocess.learned_edges import UNRECORDED  # noqa: E402

RESULTS = PROJECT_ROOT / "docs" / "affinities_results.json"
PAGE = PROJECT_ROOT / "docs" / "affinities.md"
README = PROJECT_ROOT / "README.md"
START, END = "<!-- affinities:start -->", "<!-- affinities:end -->"
RECIPES = {
    "isbi2012_cpu": "`make train` recipe: contour map of the mean-boundary agglomeration (swept)",
    "isbi2012_cpu_affinities": "affinity recipe: cells of the learned edges, no threshold",
}
NOT_SETTINGS = ("_target_", "offsets", "classifier")  # a decoder's class, the network's offsets, the run's file
MUTEX_WATERSHED = {"fragments_h": 0.1, "stride": 8, "min_size": 100}  # the recipe's decoder before learned edges
# decoder settings newer than some rows, at the value that decodes as those rows were
ADDED_LATER = {"rounds": [], **UNRECORDED}


def run(experiment: str, seed: int, fold: int, log_dir: Path) -> Path:
    """Train one recipe on one fold with one seed, alone, to its 1500 steps; the run's folder."""
    return run_seed(seed, log_dir, experiment, f"data.fold={fold}", "trainer.max_time=null")


def recipe_decoder() -> tuple[list[str], dict]:
    """The affinity recipe's post-processing group and settings as it is now (its composed config)."""
    from hydra import compose, initialize_config_dir

    from src.config import setup

    setup()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["experiment=isbi2012_cpu_affinities"], return_hydra_config=True)
    settings = OmegaConf.to_container(cfg.postprocess, resolve=True)
    return [cfg.hydra.runtime.choices["postprocess"]], {k: v for k, v in settings.items() if k not in NOT_SETTINGS}


def decoder_overrides() -> list[str]:
    """The affinity recipe's post-processing as it is now, as ``src.eval`` overrides."""
    groups, settings = recipe_decoder()
    return [f"postprocess={name}" for name in groups] + [f"postprocess.{k}={v}" for k, v in settings.items()]


def decoded_now(row: dict, settings: dict) -> bool:
    """Whether an affinity row's cells were decoded with these post-processing ``settings`` (the recipe's now)."""
    return {k: row.get("decoder", {}).get(k, ADDED_LATER.get(k)) for k in settings} == settings


def evaluate(run_dir: Path) -> None:
    """``src.eval`` of an affinity run's checkpoint on its own held-out fold, into ``RUN/eval``: the recipe's
    decoder as configured now (a run trained before a setting changed is decoded as a new run would be: the
    network is the same), and the other decoders beside it (the mutex watershed as the recipe had it before
    learned edges; mean affinity; the class head's agglomeration)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    fold = OmegaConf.load(run_dir / "config.yaml").data.fold
    overrides = [f"ckpt_path={metrics['best_checkpoint']}", f"data.fold={fold}", f"paths.output_dir={run_dir / 'eval'}"]
    overrides += decoder_overrides() + [f"compare.mutex_watershed.{k}={v}" for k, v in MUTEX_WATERSHED.items()]
    shutil.rmtree(run_dir / "eval", ignore_errors=True)  # an earlier evaluation, replaced as a whole
    result = subprocess.run([sys.executable, "-m", "src.eval", *overrides], cwd=PROJECT_ROOT, text=True)
    if result.returncode != 0:
        raise SystemExit(f"src.eval of {run_dir} failed (exit {result.returncode})")


def row_of(run_dir: Path) -> dict:
    """One run's recipe, seed, fold, steps, commit and held-out scores."""
    config = OmegaConf.load(run_dir / "config.yaml")
    experiment = "isbi2012_cpu_affinities" if config.model.get("target") == "affinities" else "isbi2012_cpu"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    held = metrics["held_out"]
    evaluated = run_dir / "eval" / "metrics.json"
    evaluation = json.loads(evaluated.read_text()) if evaluated.exists() else {}
    if experiment == "isbi2012_cpu_affinities" and evaluation:
        held = evaluation  # the recipe's decoder as configured now (:func:`evaluate`)
    info = json.loads((run_dir / "run_info.json").read_text())
    decoded_by = run_dir / "eval" / "run_info.json"  # the evaluation's commit, where it decoded the run anew
    decoded_at = (json.loads(decoded_by.read_text()).get("git_commit") or "")[:7] if evaluation else ""
    return {
        "experiment": experiment,
        "seed": int(config.seed),
        "fold": int(config.data.fold),
        "slices": held["slices"],
        "steps": metrics["global_step"],
        "commit": (info.get("git_commit") or "")[:7],
        "decoded_at": decoded_at if experiment == "isbi2012_cpu_affinities" else "",
        "machine": info.get("cpu", ""),
        "run": str(run_dir),
        "vrand": held["headline"]["vrand"],
        "vinfo": held["headline"]["vinfo"],
        "threshold_vrand": held["threshold"]["vrand"],
        "threshold_vinfo": held["threshold"]["vinfo"],
        "seconds_per_slice": held["postprocess"].get("seconds_per_slice"),
        "cells_vrand": held["postprocess"]["vrand"],
        "cells_vinfo": held["postprocess"]["vinfo"],
        "decoder": decoder_settings(held) if experiment == "isbi2012_cpu_affinities" else {},
        **compared(evaluation),
    }


def decoder_settings(held: dict) -> dict:
    """The settings of the post-processing an evaluation decoded with (its recipe's, without the target)."""
    return {k: v for k, v in held["recipe"]["postprocess"].items() if k not in NOT_SETTINGS}


def compared(evaluation: dict) -> dict:
    """The other decoders' scores of a run's ``src.eval`` (:func:`evaluate`; empty: none)."""
    found = evaluation.get("compared", {})
    scores = {}
    keys = ("vrand", "vinfo", "seconds_per_slice")
    mutex = found.get("mutex_watershed", {})
    if mutex and all(mutex["params"].get(k) == v for k, v in MUTEX_WATERSHED.items()):
        scores.update({f"mutex_watershed_{k}": mutex[k] for k in keys})
    if "mean_affinity" in found:
        scores.update({f"mean_affinity_{k}": found["mean_affinity"][k] for k in keys})
    if "agglomeration" in found:
        scores.update({f"agglomeration_{k}": found["agglomeration"]["contours"][k] for k in ("vrand", "vinfo")})
        scores.update({f"agglomeration_cells_{k}": found["agglomeration"][k] for k in ("vrand", "vinfo")})
    return scores


def _mean(values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread}"


def _cell(rows: list[dict], key: str) -> str:
    each = ", ".join(f"{r[key]:.4f}" for r in sorted(rows, key=lambda r: r["seed"]))
    return f"{_mean([r[key] for r in rows])} ({each})" if len(rows) > 1 else each


def _pair(rows: list[dict], prefix: str) -> str:
    """Mean (± standard deviation) V_rand / V_info of ``rows`` under ``prefix`` (empty: the headline's)."""
    key = f"{prefix}_" if prefix else ""
    return f"{_mean([r[f'{key}vrand'] for r in rows])} / {_mean([r[f'{key}vinfo'] for r in rows])}"


def _others(rows: list[dict]) -> str:
    """The mutex watershed, mean affinity and the class head's agglomeration, where ``src.eval`` scored them for
    every run."""
    names = {
        "mutex_watershed": "mutex watershed (fragments_h=0.1, stride=8, min_size=100)",
        "mean_affinity": "mean affinity (waterz, 0.5)",
        "agglomeration": "class head's contour map (swept)",
        "agglomeration_cells": "its cells (cut 0.55)",
    }
    found = [f"{label} {_pair(rows, key)}" for key, label in names.items() if all(f"{key}_vrand" in r for r in rows)]
    return "; ".join(found) or "-"


def _settings(rows: list[dict]) -> str:
    """The decoder settings the rows were scored with (every distinct one), as `` (stride=4, min_size=100)``."""
    found = sorted({", ".join(f"{k}={v}" for k, v in sorted(r.get("decoder", {}).items())) for r in rows} - {""})
    return f" ({'; '.join(found)})" if found else ""


def table(rows: list[dict]) -> str:
    """Per fold and recipe: V_rand / V_info of the headline, of the class probability, and decoding time; then the
    mean over folds of each seed that ran on all of them."""
    lines = [
        "| fold (slices) | recipe | seeds | V_rand | V_info | cells, no sweep | post-processing s/slice | "
        "class probability (swept) | the same run's other decoders |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | --- | --- |",
    ]
    folds = sorted({r["fold"] for r in rows})
    for fold in folds:
        for experiment, label in RECIPES.items():
            mine = [r for r in rows if r["fold"] == fold and r["experiment"] == experiment]
            if not mine:
                continue
            slices = mine[0]["slices"]
            seconds = statistics.mean(r["seconds_per_slice"] or 0.0 for r in mine)
            seeds = ", ".join(str(seed) for seed in sorted(r["seed"] for r in mine))  # the order of each cell's values
            lines.append(
                f"| {fold} ({slices[0]}-{slices[-1]}) | {label}{_settings(mine)} | {seeds} | "
                f"{_cell(mine, 'vrand')} | {_cell(mine, 'vinfo')} | {_pair(mine, 'cells')} | {seconds:.2f} | "
                f"{_pair(mine, 'threshold')} | {_others(mine)} |"
            )
    if len(folds) > 1:
        lines += ["", "Cross-validated (mean over the folds, for each seed that ran on all of them):", ""]
        lines += [
            "| recipe | seed | folds | V_rand | V_info | cells, no sweep |",
            "| --- | --- | --- | ---: | ---: | --- |",
        ]
        for experiment, label in RECIPES.items():
            for seed in sorted({r["seed"] for r in rows}):
                mine = [r for r in rows if r["experiment"] == experiment and r["seed"] == seed]
                if sorted(r["fold"] for r in mine) != folds:
                    continue
                lines.append(
                    f"| {label} | {seed} | {len(folds)} | {_mean([r['vrand'] for r in mine])} | "
                    f"{_mean([r['vinfo'] for r in mine])} | {_pair(mine, 'cells')} |"
                )
    commits = ", ".join(sorted({r["commit"] for r in rows}))
    decoded = ", ".join(sorted({r.get("decoded_at") for r in rows} - {"", None}))
    decoded = f" (affinity runs decoded again at {decoded})" if decoded else ""
    machines = "; ".join(sorted({r["machine"] for r in rows}))
    head = f"Trained at commits {commits}{decoded}; {machines}. Each cell: mean ± standard deviation (each seed)."
    return "\n".join([head, "", *lines])


SHORT = {  # the README's rows: (recipe, score prefix, label)
    ("isbi2012_cpu", ""): "`make train`: contour map, swept",
    ("isbi2012_cpu", "cells_"): "`make train`: its cells, no sweep",
    ("isbi2012_cpu_affinities", ""): "affinities: learned edges, no sweep",
}


def summary(rows: list[dict]) -> str:
    """The README's block: each recipe's V_rand / V_info per fold, the mean over its seeds (the spread: the page),
    and the mean of those over the folds both recipes ran; a header's count is each recipe's runs on that fold."""
    folds = sorted({r["fold"] for r in rows})
    runs = {f: [sum(r["fold"] == f for r in rows if r["experiment"] == e) for e in RECIPES] for f in folds}
    both = [f for f in folds if all(runs[f])]
    header = [f"fold {f} ({'/'.join(sorted({str(n) for n in runs[f]}))})" for f in folds]
    mean = "mean" if both == folds else f"mean of folds {', '.join(map(str, both))}"
    lines = ["| V_rand / V_info | " + " | ".join(header) + f" | {mean} |"]
    lines.append("| --- |" + " --- |" * (len(folds) + 1))
    for (experiment, prefix), label in SHORT.items():
        means = {}
        for fold in folds:
            mine = [r for r in rows if r["experiment"] == experiment and r["fold"] == fold]
            if mine:
                means[fold] = [statistics.mean(r[prefix + key] for r in mine) for key in ("vrand", "vinfo")]
        cells = [f"{means[f][0]:.4f} / {means[f][1]:.4f}" if f in means else "-" for f in folds]
        overall = [statistics.mean(means[f][i] for f in both) for i in (0, 1)] if both else []
        cells.append(f"{overall[0]:.4f} / {overall[1]:.4f}" if both else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "Mean over seeds (runs per fold):\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="", help="comma-separated folds to run")
    parser.add_argument("--seeds", default="12345", help="comma-separated seeds to run")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated experiments to run")
    parser.add_argument("--adopt", nargs="*", type=Path, default=[], help="finished runs to take")
    parser.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / "logs" / "affinities")
    parser.add_argument("--rescore", action="store_true", help="decode kept affinity runs by today's settings")
    args = parser.parse_args()
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = [row_of(Path(r["run"])) if Path(r["run"]).is_dir() else r for r in rows]  # read kept runs again
    if args.rescore:
        _, settings = recipe_decoder()
        for index, row in enumerate(rows):
            kept = Path(row["run"]).is_dir()
            if row["experiment"] == "isbi2012_cpu_affinities" and kept and not decoded_now(row, settings):
                evaluate(Path(row["run"]))
                rows[index] = row_of(Path(row["run"]))
    done = {(r["experiment"], r["seed"], r["fold"]) for r in rows}
    for run_dir in args.adopt:
        row = row_of(run_dir)
        if (row["experiment"], row["seed"], row["fold"]) not in done:
            rows.append(row)
            done.add((row["experiment"], row["seed"], row["fold"]))
    for fold in (int(f) for f in args.folds.split(",") if f):
        for seed in (int(s) for s in args.seeds.split(",") if s):
            for experiment in args.recipes.split(","):
                if (experiment, seed, fold) in done:
                    continue
                run_dir = run(experiment, seed, fold, args.log_dir)
                if experiment == "isbi2012_cpu_affinities":
                    evaluate(run_dir)
                rows.append(row_of(run_dir))
                done.add((experiment, seed, fold))
                RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    block = table(rows)
    PAGE.write_text(replace_block(PAGE.read_text(), block, START, END))
    README.write_text(replace_block(README.read_text(), summary(rows), START, END))
    print(block)


if __name__ == "__main__":
    main()
