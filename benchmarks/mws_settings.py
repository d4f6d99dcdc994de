"""Choose the mutex watershed's ``fragments_h``, ``stride`` and ``min_size`` on a run's held-out slices
(docs/affinities.md).

    python benchmarks/mws_settings.py RUN [RUN ...]

For each finished affinity run, ``src.predict`` writes the held-out slices' affinities once (the run's own
inference recipe: whole slices, 8-fold TTA), then every setting of the grid decodes them and is scored as
labelled cells against the run's held-out labels. Prints a markdown table per run: V_rand / V_info and the
decoding seconds per slice. Choose on one fold, report on the others.
"""

from __future__ import annotations

import argparse
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
    command = [sys.executable, "-m", "src.predict", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    command += [f"input={run / 'predictions' / 'test_images.tif'}", f"output={folder}", "postprocess=none"]
    subprocess.run([*command, "progress=false"], check=True, cwd=PROJECT_ROOT, capture_output=True)
    path = folder / "test_images_affinities.tif"
    with tifffile.TiffFile(path) as tif:
        return tif.asarray(), tif.shaped_metadata[0]["offsets"]


def grid_table(run: Path, heights: list[float], strides: list[int], min_sizes: list[int]) -> str:
    labels = tifffile.imread(run / "predictions" / "test_labels.tif") > 0
    with tempfile.TemporaryDirectory() as tmp:
        affinities, offsets = held_out_affinities(run, Path(tmp))
    lines = [
        "| fragments_h | stride | min_size | V_rand | V_info | s/slice |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for h in heights:
        for stride in strides:
            for min_size in min_sizes:
                decode = MutexWatershed(2, stride, min_size, h, tuple(tuple(o) for o in offsets))
                started = time.perf_counter()
                cells = np.stack([decode(slice_affinities) for slice_affinities in affinities])
                seconds = (time.perf_counter() - started) / len(cells)
                scores = score_segmentations(cells, labels)
                row = (
                    f"| {h:g} | {stride} | {min_size} | {scores['vrand']:.4f} | {scores['vinfo']:.4f} | {seconds:.2f} |"
                )
                lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished runs of experiment=isbi2012_cpu_affinities")
    parser.add_argument("--fragments-h", default="0", help="comma-separated fragments_h values (0: pixels)")
    parser.add_argument("--strides", default="1,4,8", help="comma-separated strides")
    parser.add_argument("--min-sizes", default="0,50,100", help="comma-separated min_size values")
    args = parser.parse_args()
    strides = [int(s) for s in args.strides.split(",")]
    min_sizes = [int(m) for m in args.min_sizes.split(",")]
    heights = [float(h) for h in args.fragments_h.split(",")]
    for run in args.runs:
        print(f"{run}:\n\n{grid_table(run, heights, strides, min_sizes)}\n", flush=True)


if __name__ == "__main__":
    main()
