"""Prediction speed of our overlap-tile path against MONAI's ``sliding_window_inference``, same network weights.

    python benchmarks/predict_vs_monai.py [--slices 8] [--tile 256] [--overlap 0.5] [--batch 8] [--out FILE]

Both see the same U-Net (random weights, fixed seed; 16 base channels, depth 4, same padding), the same ISBI
slices, tile size, batch of tiles, Gaussian blending (sigma = tile / 8), channels-last, and bf16 autocast when
this CPU or GPU computes bf16 natively. Reported: megapixels per second (best of ``--repeats`` runs after a
warm-up), the ratio to MONAI's best in the same run, and the largest absolute difference of the probabilities
from MONAI's. TTA (8 flips/rotations) is run by MONAI the way its users do: one sliding window per transform.
Ours is timed with both of its stitchings: ``gaussian`` (MONAI's and nnU-Net's: every tile covering a pixel,
weighted) and ``crop`` (the U-Net paper's overlap-tile: each pixel from the tile whose centre is nearest, the
expanding path run only over the part of each tile that is kept). The last lines give the share of our eager
passes spent inside the network's convolutions: the Gaussian path runs the same convolutions on the same tiles
as MONAI, so that share is the ratio to MONAI that a path doing nothing but those convolutions would reach.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import tifffile
import torch

from src.config import PROJECT_ROOT
from src.config.hardware import cpu_description, cpu_has_native_bf16
from src.data.normalize import normalize_slices
from src.inference.tiling import TiledPredictor
from src.inference.tta import DIHEDRAL, dihedral, dihedral_inverse
from src.inference.whole import predict_logits
from src.models.unet import UNet
from src.utils.allocator import reuse_freed_memory
from src.utils.atomic import write_text_atomic


def _autocast(dtype: torch.dtype | None, device: torch.device):
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def monai_predict(net, images, args, dtype, device, tta):
    from monai.inferers import sliding_window_inference

    def predictor(x: torch.Tensor) -> torch.Tensor:
        with _autocast(dtype, device):
            logits = net(x.contiguous(memory_format=torch.channels_last))
        return logits.float().softmax(dim=1)[:, 1:2]

    outputs = []
    with torch.inference_mode():
        for image in images:
            x = torch.from_numpy(image)[None, None].to(device)
            total = 0
            for index in tta:
                prob = sliding_window_inference(
                    dihedral(x, index),
                    roi_size=(args.tile, args.tile),
                    sw_batch_size=args.batch,
                    predictor=predictor,
                    overlap=args.overlap,
                    mode="gaussian",
                    sigma_scale=0.125,
                )
                total = total + dihedral_inverse(prob, index)
            outputs.append((total / len(tta))[0, 0].cpu().numpy())
    return np.stack(outputs)


def ours_predict(predictor: TiledPredictor, images):
    return np.stack(list(predictor.predict_many(images)))


def whole_slice(net, images, dtype, device, tta=(0,)):
    """The untiled prediction: each slice through the network at once (mirror-padded to fit), same TTA."""
    outputs = []
    with torch.inference_mode(), _autocast(dtype, device):
        for image in images:
            x = torch.from_numpy(image)[None, None].to(device)
            total = 0
            for index in tta:
                moved = dihedral(x, index).contiguous(memory_format=torch.channels_last)
                total = total + dihedral_inverse(predict_logits(net, moved).float().softmax(1)[:, 1:2], index)
            outputs.append((total / len(tta))[0, 0].cpu().numpy())
    return np.stack(outputs)


def timed(fn, repeats: int):
    result = fn()  # warm-up (and compilation, when asked)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def convolution_seconds(net: torch.nn.Module, fn, device: torch.device) -> tuple[float, float]:
    """``fn()``'s wall time and the part of it spent inside ``net``'s convolutions (forward hooks, same pass)."""
    spent = [0.0]
    started: dict[int, float] = {}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def before(module, inputs) -> None:
        sync()
        started[id(module)] = time.perf_counter()

    def after(module, inputs, output) -> None:
        sync()
        spent[0] += time.perf_counter() - started.pop(id(module))

    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    handles = [h for m in convs for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start, spent[0]
    finally:
        for handle in handles:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--data", default=str(PROJECT_ROOT.parent / "shared" / "data" / "isbi2012" / "train-volume.tif")
    )
    parser.add_argument("--out", default=str(PROJECT_ROOT / "benchmarks" / "results" / "predict_vs_monai.md"))
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument(
        "--default-allocator", action="store_true", help="leave glibc's malloc as it is (src.predict tunes it)"
    )
    args = parser.parse_args()
    tuned = reuse_freed_memory(not args.default_allocator)  # one process: MONAI runs on the same allocator

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    native_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    dtype = torch.bfloat16 if native_bf16 else None
    stack = tifffile.imread(args.data)
    images = normalize_slices(stack[-args.slices :])
    megapixels = images.size / 1e6
    torch.manual_seed(0)
    net = UNet(depth=4, base_channels=16).eval().to(device=device, memory_format=torch.channels_last)

    rows = []
    conv_splits = {}  # stitching -> (seconds, of which in convolutions) of ours, eager, TTA off
    no_tta_monai_s = float("nan")

    def row(name, tta_name, seconds, probs, monai_s, reference, exact):
        rows.append(
            (
                name,
                tta_name,
                seconds,
                monai_s,
                float(np.abs(probs - reference).max()),
                float(np.abs(probs - exact).max()),
                float(np.abs(probs - exact).mean()),
            )
        )
        print(f"{name:40s} TTA {tta_name:7s} {seconds:7.2f} s  {megapixels / seconds:.3f} Mpx/s", flush=True)

    for tta_name, tta in (("off", (0,)), ("on (8)", DIHEDRAL)):
        exact = whole_slice(net, images, dtype, device, tta)
        monai_s, reference = timed(lambda tta=tta: monai_predict(net, images, args, dtype, device, tta), args.repeats)
        row("MONAI sliding_window_inference", tta_name, monai_s, reference, monai_s, reference, exact)
        for stitching in ("gaussian", "crop"):
            for compiled in (False, True) if not args.no_compile else (False,):
                name = f"ours, {stitching} stitching, " + ("torch.compile (freezing)" if compiled else "eager")
                predictor = TiledPredictor(
                    net,
                    tile_size=args.tile,
                    overlap=args.overlap,
                    stitching=stitching,
                    batch_size=args.batch,
                    tta=tta,
                    autocast_dtype=dtype,
                    channels_last=True,
                    device=device,
                    pad_batches=compiled,
                    compile=compiled,
                )
                seconds, probs = timed(lambda p=predictor: ours_predict(p, images), args.repeats)
                row(name, tta_name, seconds, probs, monai_s, reference, exact)
                if not compiled and len(tta) == 1:
                    conv_splits[stitching] = min(
                        (
                            convolution_seconds(predictor.run_net, lambda p=predictor: ours_predict(p, images), device)
                            for _ in range(args.repeats)
                        ),
                        key=lambda pair: pair[0],
                    )
                    no_tta_monai_s = monai_s

    precision = "bf16 autocast" if dtype else "fp32"
    lines = [
        "# Prediction: ours against MONAI's sliding window",
        "",
        f"- machine: {cpu_description()}; {torch.get_num_threads()} torch threads, {device}",
        f"- torch {torch.__version__}; {precision}; channels-last for both; allocator: "
        + ("glibc tuned as `src.predict` does (`reuse_freed_memory`), for both" if tuned else "glibc's default"),
        f"- {args.slices} ISBI slices of {images.shape[1]}x{images.shape[2]} ({megapixels:.2f} Mpx), random U-Net "
        "(depth 4, 16 base channels, same padding)",
        f"- tiles {args.tile}, overlap {args.overlap} for both (MONAI `mode=gaussian`, sigma_scale 0.125), "
        f"{args.batch} tiles a batch; best of {args.repeats} after a warm-up",
        f"- command: `python benchmarks/predict_vs_monai.py --slices {args.slices} --tile {args.tile} "
        f"--overlap {args.overlap} --batch {args.batch}{' --default-allocator' if args.default_allocator else ''}`",
        "",
        "Agreement: the largest absolute difference of probabilities from MONAI's, and the largest and mean",
        "difference from the untiled whole-slice prediction (each slice through the network at once, same TTA).",
        "",
        "| path | TTA | seconds | Mpx/s | vs MONAI | max diff from MONAI | max / mean diff from whole slice |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, tta_name, seconds, monai_s, diff, whole_max, whole_mean in rows:
        lines.append(
            f"| {name} | {tta_name} | {seconds:.2f} | {megapixels / seconds:.3f} | {monai_s / seconds:.2f}x "
            f"| {diff:.2e} | {whole_max:.2e} / {whole_mean:.2e} |"
        )
    if "gaussian" in conv_splits:
        total, conv = conv_splits["gaussian"]
        lines += [
            "",
            f"Where ours (Gaussian stitching, eager, TTA off) spends its time: {total:.2f} s in a pass timed with "
            f"forward hooks on the network's convolutions, {conv:.2f} s ({100 * conv / total:.0f}%) inside them. "
            f"MONAI runs the same convolutions on the same tiles, so a path that ran nothing but them would be "
            f"{no_tta_monai_s / conv:.2f}x MONAI.",
        ]
    if "crop" in conv_splits and "gaussian" in conv_splits:
        total, conv = conv_splits["crop"]
        lines += [
            "",
            f"Crop stitching (each pixel from the tile whose centre is nearest; the expanding path run only over "
            f"the part of each tile that is kept, tiles batched by that part): {total:.2f} s, {conv:.2f} s in the "
            f"convolutions, {conv / conv_splits['gaussian'][1]:.2f} of the Gaussian path's convolution time, "
            f"on the same tiles.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
