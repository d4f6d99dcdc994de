"""Blockwise prediction of a volume larger than memory: peak memory and throughput of ``src.predict output=*.zarr``.

    python benchmarks/blockwise_volume.py [--slices 64] [--side 8192] [--compare-slices 2] [--workdir DIR]

Generates (once, cached in ``--workdir``) a ``slices x side x side`` uint8 Zarr volume tiled from the ISBI 2012
training slices (64 x 8192 x 8192 = 4 GiB), and a same-padding U-Net of random weights (``--depth``,
``--base-channels``; small by default so that 2 CPU cores finish the whole volume). Reports:

1. ``src.predict`` of the whole volume to OME-Zarr, as a user runs it (its own process): seconds, megavoxels per
   second and the process's peak resident memory (``getrusage`` of the child).
2. On the first ``--compare-slices`` slices, the same weights three ways: the blockwise path (a Zarr of those
   slices), today's TIFF path (overlapping tiles of ``--tile``, crop stitching) and MONAI's
   ``sliding_window_inference`` (tiles of ``--tile``, Gaussian blending), each in megavoxels per second, with the
   ratio to the TIFF path. No TTA; bf16 autocast where the CPU computes bf16 natively (``precision=auto``).
3. On the same slices, both paths again with the cells cut by ``--cells`` (a post-processing config, default
   ``watershed``; ``none`` skips it): the TIFF path whole slice by whole slice, the blockwise path block by block
   (``cells_halo`` 128) and stitched; seconds, peak memory and the ratio to the TIFF path with cells.

Writes a Markdown table to ``--out`` (default ``benchmarks/results/blockwise_volume.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from src.config import PROJECT_ROOT
from src.config.hardware import cpu_description, cpu_has_native_bf16
from src.utils.atomic import write_text_atomic


def make_volume(path: Path, slices: int, side: int, labels: bool = False) -> None:
    """A uint8 Zarr volume tiled from the ISBI slices (chunks of one slice's 1024 x 1024), written slice by slice;
    ``labels``: the same tiling of the ISBI labels (tile for tile aligned with the images)."""
    import zarr

    from src.data.sources import PublishedSource

    if (path / "zarr.json").exists():
        return
    mirror = os.environ.get("ISBI2012_MIRROR")  # as conf/data/isbi2012.yaml takes it
    source = PublishedSource("isbi2012", str(PROJECT_ROOT / "data" / "isbi2012"), mirror=mirror)
    source.prepare()
    images = source.load()[1 if labels else 0]
    tmp = path.with_name(path.name + ".tmp")
    array = zarr.create_array(tmp, shape=(slices, side, side), chunks=(1, 1024, 1024), dtype=np.uint8, overwrite=True)
    reps = -(-side // images.shape[1])
    for z in range(slices):
        plane = np.concatenate([np.concatenate([images[(z + i + j) % len(images)] for j in range(reps)], axis=1)
                                for i in range(reps)], axis=0)  # fmt: skip
        array[z] = plane[:side, :side]
    tmp.rename(path)


def make_checkpoint(path: Path, depth: int, base: int) -> None:
    from src.models.module import SegmentationModule

    torch.manual_seed(0)
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": depth, "base_channels": base, "padding": "same"},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01},
    )
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)


def run_measured(task: str, *overrides: str) -> tuple[str, float, float]:
    """``python -m <task> <overrides>`` in its own process: its stdout, wall seconds and peak resident memory in GiB
    (the process and its children, sampled every 20 ms with psutil, which wandb installs)."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", task, *overrides], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):  # a child may end between listing and reading it
            peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
        time.sleep(0.02)
    stdout, stderr = process.communicate()
    if process.returncode:
        raise SystemExit(f"{task} {' '.join(overrides)} failed:\n{stderr[-3000:]}")
    return stdout, time.perf_counter() - started, peak / 2**30


def run_predict(*overrides: str) -> tuple[dict, float]:
    """``src.predict`` as :func:`run_measured` runs it: its JSON summary and its peak resident memory in GiB."""
    stdout, _, peak = run_measured("src.predict", *overrides, "progress=false")
    return json.loads(stdout[stdout.index("{") :]), peak


def monai_mvox_per_s(ckpt: Path, images: np.ndarray, tile: int) -> float:
    from monai.inferers import sliding_window_inference

    from src.data.normalize import normalize_slices
    from src.models.checkpoint import load_module

    net = load_module(ckpt).net.eval()
    dtype = torch.bfloat16 if cpu_has_native_bf16() else None
    started = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        for image in normalize_slices(images):
            x = torch.from_numpy(image)[None, None]
            sliding_window_inference(
                x, (tile, tile), 4, lambda t: net(t).float().softmax(1), overlap=0.25, mode="gaussian"
            )
    return images.size / 1e6 / (time.perf_counter() - started)


def cells_rows(common: list[str], work: Path, blocks: str, tile: int, method: str, size: str) -> list[tuple]:
    """The TIFF path (tiles of ``tile``) and the blockwise path with their cells cut by ``method``: the table's last
    two rows."""
    with_cells = [*(c for c in common if not c.startswith("postprocess=")), f"postprocess={method}"]
    tiles = [f"tile_size={tile}", "stitching=crop"]
    tiff, tiff_peak = run_predict(*with_cells, f"input={work / 'first.tif'}", f"output={work / 'tif_cells'}", *tiles)
    block, block_peak = run_predict(
        *with_cells, f"input={work / 'first.zarr'}", f"output={work / 'first_cells.zarr'}", blocks
    )
    ratio = tiff["seconds"] / block["seconds"]
    return [
        (f"TIFF path + cells ({method}, whole slices)", size, tiff["seconds"], tiff["megapixels_per_second"],
         f"{tiff_peak:.2f}", "1.00"),
        (f"blockwise + cells ({method}, stitched)", size, block["seconds"], block["megavoxels_per_second"],
         f"{block_peak:.2f}", f"{ratio:.2f}"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--base-channels", type=int, default=4)
    parser.add_argument("--block", default="4,1024,1024")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--compare-slices", type=int, default=2)
    parser.add_argument("--cells", default="watershed", help="post-processing of the cells rows; none: no such rows")
    parser.add_argument("--skip-volume", action="store_true", help="only the comparison on --compare-slices")
    parser.add_argument("--workdir", default="/tmp/emunet_blockwise_bench")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "benchmarks" / "results" / "blockwise_volume.md"))
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    volume = work / f"volume_{args.slices}x{args.side}.zarr"
    ckpt = work / f"unet_d{args.depth}_c{args.base_channels}.ckpt"
    make_volume(volume, args.slices, args.side)
    make_checkpoint(ckpt, args.depth, args.base_channels)
    common = [f"ckpt_path={ckpt}", "tta=false", "postprocess=none", "prob_dtype=uint8", "overwrite=true"]
    blocks = f"block_shape=[{args.block}]"
    rows = []
    if not args.skip_volume:
        summary, peak = run_predict(*common, f"input={volume}", f"output={work / 'out.zarr'}", blocks)
        gib = np.prod(summary["shape"]) / 2**30
        rows.append(("blockwise, whole volume", f"{gib:.2f} GiB", summary["seconds"],
                     summary["megavoxels_per_second"], f"{peak:.2f}", ""))  # fmt: skip
    import zarr

    first = zarr.open_array(volume, mode="r")[: args.compare_slices]
    tifffile.imwrite(work / "first.tif", first)
    zarr.create_array(work / "first.zarr", data=first, chunks=(1, 1024, 1024), overwrite=True)
    tiff, tiff_peak = run_predict(*common, f"input={work / 'first.tif'}", f"output={work / 'tif_out'}",
                                  f"tile_size={args.tile}", "stitching=crop")  # fmt: skip
    block, block_peak = run_predict(
        *common, f"input={work / 'first.zarr'}", f"output={work / 'first_out.zarr'}", blocks
    )
    tiff_rate = tiff["megapixels_per_second"]
    monai_rate = monai_mvox_per_s(ckpt, first, args.tile)
    size = f"{args.compare_slices} x {args.side}^2"
    rows += [
        ("TIFF path (tiles, crop stitching)", size, tiff["seconds"], tiff_rate, f"{tiff_peak:.2f}", "1.00"),
        ("blockwise (OME-Zarr)", size, block["seconds"], block["megavoxels_per_second"], f"{block_peak:.2f}",
         f"{block['megavoxels_per_second'] / tiff_rate:.2f}"),
        ("MONAI sliding_window_inference", size, "", round(monai_rate, 4), "", f"{monai_rate / tiff_rate:.2f}"),
    ]  # fmt: skip
    if args.cells != "none":
        rows += cells_rows(common, work, blocks, args.tile, args.cells, size)
    lines = [
        f"# Blockwise prediction ({time.strftime('%Y-%m-%d')}, {cpu_description()}, {torch.get_num_threads()} threads)",
        "",
        f"`python benchmarks/blockwise_volume.py {' '.join(sys.argv[1:])}`: U-Net depth {args.depth}, "
        f"{args.base_channels} base channels, same padding, random weights; blocks {args.block}, tiles {args.tile}; "
        f"no TTA; precision auto (bf16 native: {cpu_has_native_bf16()}).",
        "",
        "| path | input | seconds | megavoxels/s | peak RSS (GiB) | / TIFF path |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(str(c) for c in row)} |" for row in rows),
        "",
    ]
    write_text_atomic(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
