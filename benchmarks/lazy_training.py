"""Training on a volume larger than memory: peak resident memory of ``src.train`` read lazily, against in memory.

    python benchmarks/lazy_training.py [--slices 64] [--side 8192] [--workdir DIR]

Generates (once, cached in ``--workdir``, shared with benchmarks/blockwise_volume.py) a ``slices x side x side``
uint8 Zarr image volume tiled from the ISBI 2012 training slices (64 x 8192 x 8192 = 4 GiB) and its label volume
tiled the same way. Runs ``src.train`` as a user does (its own process; peak RSS of the process tree sampled every
20 ms with psutil) with the same short schedule (``--steps`` steps of batch 4, crops 256, validation and the held-out
test by the training recipe) on:

1. ISBI 2012 read whole into memory (today's path; the reference) and read lazily;
2. the first ``--small-slices`` slices of the volume read lazily and, with validation and test off (a whole
   8192 x 8192 slice does not fit the network in memory), read whole;
3. the whole volume read lazily (``data.loading=auto`` chooses it above 2 GiB).

Writes a Markdown table to ``--out`` (default ``benchmarks/results/lazy_training.md``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from src.config import PROJECT_ROOT
from src.config.hardware import cpu_description
from src.utils.atomic import write_text_atomic

if str(PROJECT_ROOT) not in sys.path:  # run as a script (python benchmarks/lazy_training.py), not from the root
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks.blockwise_volume import make_volume, run_measured  # noqa: E402


def volume_data(images: Path, labels: Path) -> list[str]:
    return ["data=tiff", f"data.source.images={images}", f"data.source.labels={labels}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--small-slices", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--workdir", default="/tmp/emunet_blockwise_bench")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "benchmarks" / "results" / "lazy_training.md"))
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    images, labels = work / f"volume_{args.slices}x{args.side}.zarr", work / f"labels_{args.slices}x{args.side}.zarr"
    small = work / f"volume_{args.small_slices}x{args.side}.zarr", work / f"labels_{args.small_slices}x{args.side}.zarr"
    for path, is_label in ((images, False), (labels, True), (small[0], False), (small[1], True)):
        make_volume(path, args.slices if path in (images, labels) else args.small_slices, args.side, is_label)
    schedule = ["trainer.max_epochs=1", f"data.train_samples={4 * args.steps}", "data.batch_size=4",
                "data.crop_size=256", "logger=csv", "augmentation_preview=0", "seed=1",
                f"paths.output_dir={work / 'train_run'}"]  # fmt: skip
    no_eval = ["test=false", "trainer.limit_val_batches=0"]
    gib = args.side**2 / 2**30
    runs = [
        ("ISBI 2012, in memory (reference)", "30 x 512^2", ["data=isbi2012", "data.loading=memory"]),
        ("ISBI 2012, lazy", "30 x 512^2", ["data=isbi2012", "data.loading=lazy"]),
        ("volume, lazy", f"{args.small_slices} x {args.side}^2 ({args.small_slices * gib:.2f} GiB)",
         [*volume_data(*small), "data.loading=lazy"]),
        ("volume, in memory, no validation / test", f"{args.small_slices} x {args.side}^2",
         [*volume_data(*small), "data.loading=memory", *no_eval]),
        ("volume, lazy (auto)", f"{args.slices} x {args.side}^2 ({args.slices * gib:.2f} GiB)",
         volume_data(images, labels)),
    ]  # fmt: skip
    rows, reference = [], None
    for name, size, overrides in runs:
        _, seconds, peak = run_measured("src.train", *schedule, *overrides)
        reference = reference or peak
        rows.append((name, size, f"{seconds:.0f}", f"{peak:.2f}", f"{peak / reference:.2f}"))
        print(rows[-1], flush=True)
    lines = [
        f"# Lazy training ({time.strftime('%Y-%m-%d')}, {cpu_description()}, {torch.get_num_threads()} threads)",
        "",
        f"`python benchmarks/lazy_training.py {' '.join(sys.argv[1:])}`: `src.train` with the default model "
        f"(U-Net depth 4, 16 base channels), {args.steps} steps of 4 crops of 256, validation and held-out test by "
        "the training recipe (8 boxes of 512 when lazy) unless stated; seconds include start-up and the statistics "
        "sample. Peak RSS: the process tree, every 20 ms.",
        "",
        "| data | volume | seconds | peak RSS (GiB) | / reference |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
    ]
    write_text_atomic(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
