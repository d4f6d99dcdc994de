"""Ablation of the CPU recipe: each component switched off (or swapped) in turn, same time budget and seed.

    python benchmarks/ablation.py [--seeds 12345] [--variants full,no_weight_map,...] [--out docs/ablation.md]

Every variant is a real `python -m src.train experiment=isbi2012_cpu <overrides>` run (10 minutes of training
each), one after the other so that no two share the CPU. The table reports, from each run's metrics.json, the
held-out scores (fold 4, slices 24-29) of the prediction training leaves: the threshold sweep of its
test-time-augmented probability, and its cells from connected components at 0.5 and from the seeded
watershed (conf/postprocess defaults, chosen earlier on a cross-entropy model), plus the number of optimizer
steps the budget bought. Results of finished runs are kept in a JSON file beside the table, so an
interrupted ablation resumes; ``--adopt NAME=RUN_DIR`` takes a finished run of exactly that variant's config.
Each row names the machine it ran on (CPU model, cores, native bf16), and the table has one section per machine:
the time budget buys a different number of steps on each, so rows compare only within a machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import tifffile
from omegaconf import OmegaConf

from src.config import PROJECT_ROOT
from src.config.hardware import cpu_description
from src.metrics.isbi import score_segmentations
from src.postprocess.instances import ConnectedComponents, SeededWatershed, postprocess_stack

# Post-processing of each run's held-out probability, scored beside the threshold sweep (defaults of conf/postprocess).
POSTPROCESS = {"components": ConnectedComponents(), "watershed": SeededWatershed()}

# Every variant's overrides make it exactly the configuration that ran. The recipe trains two U-Nets side by side
# (`model.members=2`), as do the pair_* variants (two) and ensemble3 (three); every other variant
# ran one (`model.members=1`, in its overrides). The recipe stops at 1500
# steps (or 10 minutes); before, it trained for the whole 10 minutes (`trainer.max_steps=-1`). On the CPU without native
# bf16, where the variants from depth4 down ran, that bought about 1500 steps in fp32; they changed one thing
# from the recipe of their day (depth 4, then weighted CE alone, then Dice + border-weighted CE).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "full": (
        "the CPU recipe as `make train` runs it (two U-Nets of depth 5 and 8 base channels trained side by side, "
        "their mean probability predicted; Dice + CE, 1500 steps)",
        [],
    ),
    "one_network": ("one U-Net instead of two (the recipe before the pair)", ["model.members=1"]),
    "full_fp32": ("one U-Net in fp32", ["model.members=1", "trainer.precision=32"]),
    "time_budget": ("no step cap: training for the whole 10 minutes", ["model.members=1", "trainer.max_steps=-1"]),
    "time_budget_fp32": ("no step cap, fp32", ["model.members=1", "trainer.max_steps=-1", "trainer.precision=32"]),
    "time_budget_3_5min": (
        "no step cap, 3.5 minutes of training",
        ["model.members=1", "trainer.max_steps=-1", "trainer.max_time=00:00:03:30"],
    ),
    "channels16": (
        "16 base channels, no step cap",
        ["model.members=1", "model.base_channels=16", "trainer.max_steps=-1"],
    ),
    "channels16_paper_augmentation": (
        "16 base channels, no step cap, the paper's augmentation (elastic deformation of every crop, grey values)",
        ["model.members=1", "model.base_channels=16", "trainer.max_steps=-1", "data/augmentation=paper"],
    ),
    "channels24": (
        "24 base channels, no step cap",
        ["model.members=1", "model.base_channels=24", "trainer.max_steps=-1"],
    ),
    "time_budget_fp32_4min": (
        "no step cap, fp32, 4 minutes of training",
        ["model.members=1", "trainer.max_steps=-1", "trainer.precision=32", "trainer.max_time=00:00:04:00"],
    ),
    "cldice": (
        "adds clDice of the membranes (weight 0.5, 5 skeleton iterations) to Dice + CE",
        ["model.members=1", "loss=dice_ce_cldice"],
    ),
    "ensemble3": (
        "three U-Nets trained side by side instead of two",
        ["model.members=3"],
    ),
    "pair_channels12": ("the pair with 12 base channels instead of 8", ["model.base_channels=12"]),
    "pair_batch8": ("the pair on 8 crops a step instead of 4, both on all 8", ["data.batch_size=8"]),
    "pair_lr002": ("the pair with learning rate 0.002 instead of 0.003", ["optimizer.lr=0.002"]),
    "pair_lr005": ("the pair with learning rate 0.005 instead of 0.003", ["optimizer.lr=0.005"]),
    "pair_split_batch": (
        "the pair, each U-Net on its own 4 crops (8 crops a step) instead of both on the same 4",
        ["model.split_batch=true", "data.batch_size=8"],
    ),
    "pair_crop512": (
        "the pair on whole 512x512 slices, one a step, instead of 4 crops of 256 (the same pixels a step)",
        ["data.crop_size=512", "data.batch_size=1"],
    ),
    "pair_crop384": (
        "the pair on 2 crops of 384 a step instead of 4 of 256 (12% more pixels a step)",
        ["data.crop_size=384", "data.batch_size=2"],
    ),
    "pair_widen1": (
        "the pair on training labels whose membranes are widened by 1 pixel on each side",
        ["data.membrane_widening=1"],
    ),
    "pair_dropout": (
        "the pair with dropout 0.5 at the end of the contracting path, as in the paper",
        ["model.dropout=0.5"],
    ),
    "pair_weight_decay": (
        "the pair with AdamW weight decay 0.05 instead of 0.0001",
        ["optimizer.weight_decay=0.05"],
    ),
    "pair_depth6": (
        "the pair at depth 6 instead of 5 (more context: 4x4 at the bottom of a 256 crop)",
        ["model.depth=6"],
    ),
    "pair_bilinear": (
        "the pair with bilinear up-sampling and a 1x1 convolution instead of transposed convolutions",
        ["model.up_mode=bilinear"],
    ),
    "pair_poly": (
        "the pair with nnU-Net's polynomial learning-rate decay instead of warm-up and cosine",
        ["scheduler=poly", "~scheduler.warmup_steps"],
    ),
    "pair_steps1200": (
        "the pair stopped at 1200 steps instead of 1500 (the cosine schedule ends there)",
        ["trainer.max_steps=1200"],
    ),
    "depth4": (
        "depth 4 instead of 5 (the recipe before this ablation)",
        ["model.members=1", "trainer.max_steps=-1", "model.depth=4"],
    ),
    "no_weight_map": (
        "plain cross-entropy instead of the border-weighted one",
        ["model.members=1", "trainer.max_steps=-1", "loss=ce", "model.depth=4"],
    ),
    "elastic": (
        "adds the paper's elastic deformation to half of the crops",
        [
            "model.members=1",
            "trainer.max_steps=-1",
            "data/augmentation=paper",
            "data.augmentation.elastic_p=0.5",
            "model.depth=4",
        ],
    ),
    "dice_ce": (
        "Dice + the border-weighted cross-entropy",
        ["model.members=1", "trainer.max_steps=-1", "loss=dice_weighted_ce", "model.depth=4"],
    ),
    "weighted_ce_depth5": (
        "the border-weighted cross-entropy alone, without Dice (the recipe before Dice was adopted)",
        ["model.members=1", "trainer.max_steps=-1", "loss=weighted_ce"],
    ),
    "compiled": (
        "torch.compile of the network (more steps in the same time), with the weighted CE alone",
        ["model.members=1", "trainer.max_steps=-1", "compile=true", "loss=weighted_ce"],
    ),
    # Against the recipe before the weight map was dropped (depth 5, Dice + border-weighted CE):
    "dice_weighted_ce": (
        "Dice + the border-weighted cross-entropy (the recipe before the weight map was dropped)",
        ["model.members=1", "trainer.max_steps=-1", "loss=dice_weighted_ce"],
    ),
    "dice_weighted_ce_elastic": (
        "dice_weighted_ce with the paper's augmentation, elastic deformation on half of the crops",
        [
            "model.members=1",
            "trainer.max_steps=-1",
            "loss=dice_weighted_ce",
            "data/augmentation=paper",
            "data.augmentation.elastic_p=0.5",
        ],
    ),
    "dice_weighted_ce_compiled": (
        "dice_weighted_ce with torch.compile of the network (more steps in the same time)",
        ["model.members=1", "trainer.max_steps=-1", "loss=dice_weighted_ce", "compile=true"],
    ),
    "dice_weighted_ce_ema": (
        "dice_weighted_ce with an exponential moving average of the weights (decay 0.998), tested with the average",
        [
            "model.members=1",
            "trainer.max_steps=-1",
            "loss=dice_weighted_ce",
            "+callbacks.ema._target_=lightning.pytorch.callbacks.EMAWeightAveraging",
            "+callbacks.ema.decay=0.998",
        ],
    ),
    "no_batchnorm": (
        "no normalisation layers (1.5x the steps), learning rate 0.002",
        ["model.members=1", "trainer.max_steps=-1", "model.norm=none", "optimizer.lr=0.002", "model.depth=4"],
    ),
    "valid_padding": (
        "valid (unpadded) convolutions: 444-pixel input crops, 260-pixel outputs, batch 2",
        [
            "model.members=1",
            "trainer.max_steps=-1",
            "model.padding=valid",
            "data.crop_size=444",
            "data.batch_size=2",
            "model.depth=4",
        ],
    ),
}


def run_variant(name: str, seed: int, log_dir: Path, machine: str) -> dict:
    overrides = ["experiment=isbi2012_cpu", f"seed={seed}", f"tags=[ablation,{name}]", f"paths.log_dir={log_dir}"]
    overrides += VARIANTS[name][1]
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "src.train", *overrides], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"variant {name} (seed {seed}) failed:\n{result.stderr[-2000:]}")
    run = max((log_dir / "train" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return {**score_run(run, name, seed, machine), "wall_s": round(time.time() - started)}


def score_run(run: Path, name: str, seed: int, machine: str) -> dict:
    """A finished run's row: held-out scores of its prediction, sweep and post-processed."""
    metrics = json.loads((run / "metrics.json").read_text())
    held = metrics["held_out"]
    prob = tifffile.imread(run / held["files"]["test_probability.tif"])
    truth = tifffile.imread(run / held["files"]["test_labels.tif"]) > 0
    cells = {
        method_name: score_segmentations(postprocess_stack(method, prob), truth, workers=0)
        for method_name, method in POSTPROCESS.items()
    }
    return {
        "variant": name,
        "seed": seed,
        "machine": machine,
        "run": str(run),
        "steps": metrics["global_step"],
        "vrand": held["threshold"]["vrand"],
        "vinfo": held["threshold"]["vinfo"],
        **{f"{method}_{key}": scores[key] for method, scores in cells.items() for key in ("vrand", "vinfo")},
    }


COLUMNS = ("vrand", "vinfo", "components_vrand", "components_vinfo", "watershed_vrand", "watershed_vinfo")


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(results: list[dict]) -> str:
    """One table per machine, in the order the machines first appear in ``results``."""
    sections = []
    for machine in dict.fromkeys(r["machine"] for r in results):
        lines = [
            f"### {machine}",
            "",
            "| variant | what changes | steps | V_rand (sweep) | V_info (sweep) | V_rand (components 0.5) "
            "| V_info (components 0.5) | V_rand (watershed) | V_info (watershed) | seeds |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, (description, overrides) in VARIANTS.items():
            rows = [r for r in results if r["variant"] == name and r["machine"] == machine]
            if not rows:
                continue
            change = description + (f" (`{' '.join(overrides)}`)" if overrides else "")
            columns = [_cell([r[k] for r in rows]) for k in COLUMNS]
            steps = round(statistics.mean(r["steps"] for r in rows))
            lines.append(f"| {name} | {change} | {steps} | " + " | ".join(columns) + f" | {len(rows)} |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="12345", help="comma-separated seeds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "ablation_results.md")
    parser.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / "logs" / "ablation")
    parser.add_argument("--adopt", action="append", default=[], metavar="NAME=RUN_DIR")
    args = parser.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    store = args.out.with_suffix(".json")
    results = json.loads(store.read_text()) if store.exists() else []
    machine = cpu_description()  # every row made here names it
    for adopted in args.adopt:
        name, run = adopted.split("=", 1)
        seed = OmegaConf.load(Path(run) / "config.yaml").seed  # the seed the run was made with
        row = {**score_run(Path(run), name, seed, machine), "adopted": True}
        results = [r for r in results if (r["variant"], r["seed"], r["machine"]) != (name, seed, machine)]
        results.append(row)
    if args.adopt:  # kept at once: adopted runs are not rerun
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(results, indent=2))
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.variants.split(","):
            if any((r["variant"], r["seed"], r["machine"]) == (name, seed, machine) for r in results):
                continue
            print(f"running {name} (seed {seed}) ...", flush=True)
            results.append(run_variant(name, seed, args.log_dir, machine))
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(results, indent=2))
            print(json.dumps(results[-1]), flush=True)
    header = (
        "Ablation of `experiment=isbi2012_cpu`, at most 10 minutes of training per run, one section per machine; "
        "held-out fold 4 (slices 24-29), prediction with 8-fold test-time augmentation. Written by "
        "`benchmarks/ablation.py`."
        "\n\n"
    )
    args.out.write_text(header + table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
