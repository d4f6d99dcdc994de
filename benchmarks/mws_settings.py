"""Choose the mutex watershed's ``fragments_h``, ``stride``, ``min_size`` and ``bias`` on runs' held-out slices
(docs/affinities.md).

    python benchmarks/mws_settings.py RUN [RUN ...]

For each finished affinity run, ``src.predict`` writes the held-out slices' affinities once (the run's own
inference recipe: whole slices, 8-fold TTA), then every setting of the grid decodes them and is scored as
labelled cells against the run's held-out labels. Prints a markdown table per run: V_rand / V_info and the
decoding seconds per slice. Given several runs (one per fold), it also decodes each run with the setting of the
best mean V_rand over the others, so no run's score comes from a choice made on it.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from src.config import PROJECT_ROOT

if str(PROJECT_ROOT) not in sys.path:  # run as a script, not from the root
    sys.path.insert(0, str(PROJECT_ROOT))
from src.metrics.isbi import score_segmentations  # noqa: E402
from src.postprocess.mutex_watershed import MutexWatershed  # noqa: E402


def held_out_affinities(run: Path, folder: Path) -> tuple[np.ndarray, list]:
    """The run's held-out slices' affinities ``(N, K, H, W)`` and offsets, predicted by its own recipe."""
    run = run.resolve()  # src.predict runs in the project root
    command = [sys.executable, "-m", "src.predict", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    command += [f"input={run / 'predictions' / 'test_images.tif'}", f"output={folder}", "postprocess=none"]
    subprocess.run([*command, "progress=false"], check=True, cwd=PROJECT_ROOT, capture_output=True)
    path = folder / "test_images_affinities.tif"
    with tifffile.TiffFile(path) as tif:
        return tif.asarray(), tif.shaped_metadata[0]["offsets"]


Setting = tuple[float, int, int, float]  # fragments_h, stride, min_size, bias


def grid_scores(run: Path, settings: list[Setting]) -> dict[Setting, tuple[float, float, float]]:
    """V_rand, V_info and decoding seconds per slice of each setting on the run's held-out slices."""
    labels = tifffile.imread(run / "predictions" / "test_labels.tif") > 0
    with tempfile.TemporaryDirectory() as tmp:
        affinities, offsets = held_out_affinities(run, Path(tmp))
    scores = {}
    for h, stride, min_size, bias in settings:
        decode = MutexWatershed(2, stride, min_size, h, bias).with_offsets(offsets)
        started = time.perf_counter()
        cells = np.stack([decode(slice_affinities) for slice_affinities in affinities])
        seconds = (time.perf_counter() - started) / len(cells)
        scored = score_segmentations(cells, labels)
        scores[h, stride, min_size, bias] = scored["vrand"], scored["vinfo"], seconds
    return scores


def grid_table(scores: dict[Setting, tuple[float, float, float]]) -> str:
    lines = [
        "| fragments_h | stride | min_size | bias | V_rand | V_info | s/slice |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (h, stride, min_size, bias), (vrand, vinfo, seconds) in scores.items():
        lines.append(f"| {h:g} | {stride} | {min_size} | {bias:g} | {vrand:.4f} | {vinfo:.4f} | {seconds:.2f} |")
    return "\n".join(lines)


def chosen_on_the_others(runs: list[Path], scores: list[dict[Setting, tuple[float, float, float]]]) -> str:
    """Each run scored with the setting of the best mean V_rand over the other runs (the choice never sees it)."""
    lines = ["| run | setting chosen on the others | its V_rand | its V_info |", "| --- | --- | ---: | ---: |"]
    for i, run in enumerate(runs):
        others = [s for j, s in enumerate(scores) if j != i]
        best = max(others[0], key=lambda setting: np.mean([s[setting][0] for s in others]))
        vrand, vinfo, _ = scores[i][best]
        named = "fragments_h={:g} stride={} min_size={} bias={:g}".format(*best)
        lines.append(f"| {run} | {named} | {vrand:.4f} | {vinfo:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished runs of experiment=isbi2012_cpu_affinities")
    parser.add_argument("--fragments-h", default="0", help="comma-separated fragments_h values (0: pixels)")
    parser.add_argument("--strides", default="1,4,8", help="comma-separated strides")
    parser.add_argument("--min-sizes", default="0,50,100", help="comma-separated min_size values")
    parser.add_argument("--biases", default="0", help="comma-separated biases of the attractive edges")
    args = parser.parse_args()
    settings = list(
        itertools.product(
            [float(h) for h in args.fragments_h.split(",")],
            [int(s) for s in args.strides.split(",")],
            [int(m) for m in args.min_sizes.split(",")],
            [float(b) for b in args.biases.split(",")],
        )
    )
    scores = []
    for run in args.runs:
        scores.append(grid_scores(run, settings))
        print(f"{run}:\n\n{grid_table(scores[-1])}\n", flush=True)
    if len(args.runs) > 1:
        print(f"Each run decoded by the setting chosen on the others:\n\n{chosen_on_the_others(args.runs, scores)}")


if __name__ == "__main__":
    main()
