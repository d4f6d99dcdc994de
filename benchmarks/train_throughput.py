"""Training throughput of the real ``src.train`` loop against a plain PyTorch loop and the machine's ceiling.

    python benchmarks/train_throughput.py [--steps 16] [--warmup 3] [--repeats 3] [--precisions auto]
        [--channels-last true,false] [--compile false,true] [--no-paper] [--out FILE]

For each model, precision, memory format and compile setting, in the same session:

- **framework**: ``python -m src.train`` itself (the CPU recipe's config: real data module, random crops and
  augmentation (in the main process on CPUs), the recipe's loss, logging, progress bar,
  checkpointing), timed by :class:`benchmarks.step_timer.StepTimer` between the ends of consecutive training
  batches;
- **plain**: the same network, loss, optimizer, batch, precision, memory format and compile setting, built
  from the same composed config, stepped in a bare ``for`` loop over one batch already in memory;
- the ratio framework / plain, and the plain loop's GFLOP/s (counted with ``torch.utils.flop_counter`` on one
  forward and backward pass) against matrix-product GFLOP/s of the row's precision measured just before and
  just after the row's runs (the faster of the two: the VM's speed drifts over minutes);
- peak resident memory of each process (``os.wait4``), and of ``src.predict`` on a large generated stack.

Throughput is the batch size over the median step time after ``--warmup`` steps. The two loops are run
``--repeats`` times as adjacent pairs, alternating which one goes first, and the ratio reported is the median of
the pairs' ratios with their range: this 2-core VM drifts by 10-25% over minutes, so only runs taken next to
each other are compared. Each measurement runs in its own process, one at a time. One more ``src.train`` run
interleaves the two (:class:`benchmarks.step_timer.StepTimer` with ``interleave=true``): after every training
batch it steps a twin of the run's network as the plain loop does, and the ratio of each real step to the plain
step beside it is free of that drift. ``--precisions auto`` times
fp32, and bf16 autocast where the CPU computes bf16 natively (emulated bf16 is about 10x slower than fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from src.config import PROJECT_ROOT
from src.config.hardware import cpu_description, cpu_has_native_bf16
from src.utils.atomic import write_text_atomic

if str(PROJECT_ROOT) not in sys.path:  # run as a script (python benchmarks/train_throughput.py), not from the root
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks.plain_step import PlainStep  # noqa: E402
from benchmarks.step_timer import PHASES  # noqa: E402

# The CPU recipe's network, loss and batch; the paper-size network with one 512x512 slice per step.
MODELS = {
    "recipe": ["experiment=isbi2012_cpu"],
    "paper-size": [
        "experiment=isbi2012_cpu",
        "model.members=1",
        "model.depth=4",
        "model.base_channels=64",
        "data.batch_size=1",
        "data.crop_size=512",
    ],
}
# One short epoch, no time budget, no test afterwards.
COMMON = ["trainer.max_time=null", "trainer.max_epochs=1", "test=false", "logger=csv", "augmentation_preview=0"]


# ----- measurements, each run in its own process ---------------------------------------------------------
def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from src.config import setup

    setup()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def plain_loop(overrides: list[str], steps: int, warmup: int) -> dict:
    """The network, loss and optimizer of the composed config, stepped over one batch held in memory."""
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    from src.training.build import build_module
    from src.utils.allocator import reuse_freed_memory

    cfg = _compose(overrides)
    reuse_freed_memory(cfg.reuse_freed_memory)  # as src.train does, so both loops run on the same allocator
    torch.manual_seed(0)
    module = build_module(cfg)  # applies channels_last and compile as src.train does
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    plain = PlainStep(module, instantiate(cfg.optimizer), cfg.data.batch_size, cfg.data.crop_size, bf16)
    ends = []
    for _ in range(warmup + steps + 1):
        plain.step()
        ends.append(time.perf_counter())
    intervals = [b - a for a, b in zip(ends[warmup:], ends[warmup + 1 :], strict=False)]

    batch, crop = cfg.data.batch_size, cfg.data.crop_size
    counted = instantiate(cfg.model)  # an uncompiled copy: the count does not depend on the settings
    with FlopCounterMode(display=False) as counter:
        counted(torch.randn(batch, 1, crop, crop)).float().sum().backward()
    return {"intervals": intervals, "batch_size": batch, "flops": counter.get_total_flops()}


def _run_measured(command: list[str]) -> float:
    """Run ``command`` to its end; its peak resident memory in GiB (of its largest process)."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{errors.read().decode()[-3000:]}")
    return usage.ru_maxrss / 2**20


def measure_plain(overrides: list[str], args, scratch: Path) -> dict:
    result = scratch / "plain.json"
    command = [sys.executable, __file__, "--worker", json.dumps(overrides), "--result", str(result)]
    peak = _run_measured([*command, "--steps", str(args.steps), "--warmup", str(args.warmup)])
    return {**json.loads(result.read_text()), "peak_gib": peak}


def measure_framework(
    overrides: list[str], args, scratch: Path, interleave: bool = False, epochs: int | None = None
) -> dict:
    """``src.train`` timed by StepTimer; ``interleave``: with a plain step of a twin after every training batch.
    ``epochs``: that many whole epochs of the config (their ends timed too), instead of one of ``args.steps``."""
    result = scratch / ("interleaved.json" if interleave else "framework.json")
    if epochs is None:
        length = [f"trainer.limit_train_batches={args.warmup + args.steps + 1}"]
    else:
        overrides = [o for o in overrides if not o.startswith("trainer.max_epochs=")]
        length = [f"trainer.max_epochs={epochs}"]
    peak = _run_measured(
        [
            sys.executable,
            "-m",
            "src.train",
            *overrides,
            *length,
            f"paths.log_dir={scratch / 'logs'}",
            "+callbacks.step_timer._target_=benchmarks.step_timer.StepTimer",
            f"+callbacks.step_timer.output={result}",
            f"+callbacks.step_timer.warmup={args.warmup}",
            f"+callbacks.step_timer.interleave={str(interleave).lower()}",
            "+callbacks.step_timer.compile=${compile}",  # the twin compiled as the run's network is
        ]
    )
    return {**json.loads(result.read_text()), "peak_gib": peak}


def measure_prediction(args, scratch: Path) -> dict:
    """``src.predict`` (the recipe's network, untrained) over a generated stack larger than the training data."""
    import tifffile

    from src.data.synthetic import synthetic_stack
    from src.models.module import SegmentationModule

    cfg = _compose(MODELS["recipe"])
    net = OmegaConf.to_container(cfg.model, resolve=True)
    module = SegmentationModule(net=net, optimizer={"_target_": "torch.optim.AdamW", "_partial_": True})
    ckpt = scratch / "recipe.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, ckpt)
    (one,), _ = synthetic_stack(num_slices=1, size=args.predict_size, num_cells=400, seed=0)
    images = np.stack([np.roll(one, 97 * k, axis=1) for k in range(args.predict_slices)])  # shifted copies
    stack = scratch / "large.tif"
    tifffile.imwrite(stack, images)
    start = time.perf_counter()
    peak = _run_measured(
        [
            sys.executable,
            "-m",
            "src.predict",
            f"ckpt_path={ckpt}",
            f"input={stack}",
            f"output={scratch / 'predicted'}",
            "postprocess=none",
            "progress=false",
            f"paths.log_dir={scratch / 'logs'}",
        ]
    )
    seconds = time.perf_counter() - start
    return {
        "megapixels": images.size / 1e6,
        "seconds": seconds,
        "peak_gib": peak,
        "probability_gib": images.size * 4 / 2**30,
    }


# ----- the table -----------------------------------------------------------------------------------------
def images_per_second(result: dict) -> float:
    return result["batch_size"] / statistics.median(result["intervals"])


def pair_ratios(plains: list[dict], frameworks: list[dict]) -> dict:
    """Framework / plain throughput of each adjacent pair of runs: their median, lowest and highest."""
    ratios = sorted(images_per_second(f) / images_per_second(p) for p, f in zip(plains, frameworks, strict=True))
    return {"ratio": statistics.median(ratios), "ratio_low": ratios[0], "ratio_high": ratios[-1]}


def interleaved_ratios(result: dict) -> dict:
    """Framework / plain throughput within one interleaved run: the ratio of the two loops' median step times,
    with the quartiles of the ratios of each real step to the plain step beside it; the ratio of their mean step
    times (the whole run, epoch ends included); and each part's median."""
    steps = {"src.train": result["intervals"], "plain": result["plain_intervals"]}
    whole_run = statistics.mean(steps["plain"]) / statistics.mean(steps["src.train"])
    each = [p / f for p, f in zip(steps["plain"], steps["src.train"], strict=True)]
    low, _, high = statistics.quantiles(each, n=4, method="inclusive")
    phases = {
        loop: {name: statistics.median(seconds) for name, seconds in [*parts.items(), ("step", steps[loop])]}
        for loop, parts in result["phases"].items()
    }
    ratio = phases["plain"]["step"] / phases["src.train"]["step"]
    return {
        "interleaved": ratio,
        "interleaved_low": low,
        "interleaved_high": high,
        "whole_run": whole_run,
        "whole_run_steps": len(steps["plain"]),
        "phases": phases,
    }


def precisions(value: str) -> list[str]:
    """``auto``: fp32, plus bf16-mixed where the CPU (or GPU) computes bf16 natively; else the listed ones."""
    if value != "auto":
        return value.split(",")
    native = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_has_native_bf16()
    return ["32", "bf16-mixed"] if native else ["32"]


def _grid(args) -> list[tuple[str, str, str, str]]:
    grid = [
        ("recipe", precision, channels_last, compiled)
        for precision in precisions(args.precisions)
        for channels_last in args.channels_last.split(",")
        for compiled in args.compile.split(",")
    ]
    if not args.no_paper:
        grid.append(("paper-size", "32" if not cpu_has_native_bf16() else "bf16-mixed", "true", "false"))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="timed steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="adjacent pairs of runs of the two loops")
    parser.add_argument("--precisions", default="auto", help="auto, or a list such as 32,bf16-mixed")
    parser.add_argument("--channels-last", default="true,false")
    parser.add_argument("--compile", default="false,true")
    parser.add_argument("--no-paper", action="store_true", help="leave out the paper-size network")
    parser.add_argument(
        "--interleaved-epochs", type=int, default=3, help="whole epochs of the interleaved run (not for slow rows)"
    )
    parser.add_argument("--predict-slices", type=int, default=8)
    parser.add_argument("--predict-size", type=int, default=2048)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "benchmarks" / "results" / "train_throughput.md"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one plain loop
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        Path(args.result).write_text(json.dumps(plain_loop(json.loads(args.worker), args.steps, args.warmup)))
        return

    # Without native bf16 one 2048-sided product takes about a minute: a smaller one measures the same rate.
    bf16_side = 2048 if cpu_has_native_bf16() else 512

    def ceiling(precision: str) -> float:
        return matmul_gflops(torch.float32) if precision == "32" else matmul_gflops(torch.bfloat16, n=bf16_side)

    ceilings = {precision: ceiling(precision) for precision in ("32", "bf16-mixed")}
    print(f"matrix product: fp32 {ceilings['32']:.1f} GFLOP/s, bf16 {ceilings['bf16-mixed']:.1f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, precision, channels_last, compiled in _grid(args):
            overrides = [
                *MODELS[model],
                *COMMON,
                f"trainer.precision={precision}",
                f"channels_last={channels_last}",
                f"compile={compiled}",
            ]
            # Emulated bf16 (no native support) and the paper-size network take seconds a step: fewer steps.
            slow = (precision.startswith("bf16") and not cpu_has_native_bf16()) or model == "paper-size"
            steps = argparse.Namespace(
                steps=min(args.steps, 5) if slow else args.steps, warmup=min(args.warmup, 2) if slow else args.warmup
            )
            # The VM's speed drifts over minutes: each row is set against the matrix product measured just before
            # and just after its runs (the faster of the two), not only against the one at the start.
            before = ceiling(precision)
            plains, frameworks = [], []
            for pair in range(args.repeats):  # adjacent pairs, alternating which loop goes first
                scratch = Path(tempfile.mkdtemp(dir=tmp))
                if pair % 2 == 0:
                    plains.append(measure_plain(overrides, steps, scratch))
                    frameworks.append(measure_framework(overrides, steps, scratch))
                else:
                    frameworks.append(measure_framework(overrides, steps, scratch))
                    plains.append(measure_plain(overrides, steps, scratch))
            # The same comparison within one run, each real step beside a plain step of a twin network; over
            # whole epochs of the config where steps are short, so that the epochs' ends are timed too.
            interleaved = measure_framework(
                overrides,
                steps,
                Path(tempfile.mkdtemp(dir=tmp)),
                interleave=True,
                epochs=None if slow else args.interleaved_epochs,
            )
            plain = max(plains, key=images_per_second)
            framework = max(frameworks, key=images_per_second)
            plain["peak_gib"] = max(p["peak_gib"] for p in plains)
            framework["peak_gib"] = max(f["peak_gib"] for f in frameworks)
            row = {
                **pair_ratios(plains, frameworks),
                **interleaved_ratios(interleaved),
                "model": model,
                "steps": steps.steps,
                "precision": precision,
                "channels_last": channels_last,
                "compile": compiled,
                "plain": images_per_second(plain),
                "framework": images_per_second(framework),
                "batch_size": plain["batch_size"],
                "gflops": images_per_second(plain) / plain["batch_size"] * plain["flops"] / 1e9,
                "ceiling": max(before, ceiling(precision)),
                "plain_gib": plain["peak_gib"],
                "framework_gib": framework["peak_gib"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        prediction = measure_prediction(args, Path(tmp))
    write_table(rows, ceilings, prediction, args)


def write_table(rows: list[dict], ceilings: dict, prediction: dict, args) -> None:
    recipe = _compose(MODELS["recipe"])
    command = (
        f"python benchmarks/train_throughput.py --steps {args.steps} --warmup {args.warmup} --repeats {args.repeats} "
        f"--precisions {args.precisions} --channels-last {args.channels_last} --compile {args.compile} "
        f"--interleaved-epochs {args.interleaved_epochs}" + (" --no-paper" if args.no_paper else "")
    )
    lines = [
        "# Training throughput: `src.train` against a plain PyTorch loop and the matrix-product ceiling",
        "",
        f"- machine: {cpu_description()}; {torch.get_num_threads()} torch threads",
        f"- torch {torch.__version__}; written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- matrix product at the start of this run: fp32 {ceilings['32']:.1f} GFLOP/s (2048x2048), "
        f"bf16 {ceilings['bf16-mixed']:.1f} GFLOP/s ({2048 if cpu_has_native_bf16() else 512} sided); each row's "
        "ceiling: the faster of the matrix products of its precision measured just before and just after its runs",
        f"- recipe: `experiment=isbi2012_cpu` ({recipe.model.members} U-Net(s) of depth {recipe.model.depth}, "
        f"{recipe.model.base_channels} base channels, {recipe.data.batch_size} crops of {recipe.data.crop_size}, "
        f"{recipe.loss._target_.rsplit('.', 1)[-1]}, {recipe.optimizer._target_.rsplit('.', 1)[-1]}); "
        "paper-size: depth 4, 64 base channels, one 512x512 slice a step",
        f"- images/s = batch / median step time over {args.steps} steps after {args.warmup} warm-up steps, the "
        f"faster of {args.repeats} runs of each loop (emulated bf16 and the paper-size network: 5 steps after 2); "
        f"`src.train` / plain = the median (lowest-highest) of the ratios of {args.repeats} adjacent pairs of runs, "
        "alternating which loop goes first; interleaved = one more `src.train` run that steps a twin of its "
        "network (same config, own weights) as the plain loop does after every training batch: the ratio of the "
        "two loops' median step times (the quartiles of the ratios of each real step to the plain step beside it), "
        f"over {args.interleaved_epochs} whole epochs of the config (the 5-step rows: their one short epoch); whole "
        "run = the ratio of the two loops' mean step times in that run, all timed steps, epoch ends included; "
        "GFLOP/s of the plain loop from `torch.utils.flop_counter` (forward + backward)",
        f"- command: `{command}` (`make bench` runs it)",
        "",
        "| model | precision | channels-last | compile | plain img/s | `src.train` img/s | `src.train` / plain "
        "| `src.train` / plain, interleaved | whole run (steps) | plain GFLOP/s | ceiling GFLOP/s "
        "| of the ceiling | peak GiB plain / `src.train` |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        # Emulated bf16 matrix products are slower than emulated bf16 convolutions: no ceiling to compare with.
        emulated = r["precision"].startswith("bf16") and not cpu_has_native_bf16()
        share = "n/a (emulated bf16)" if emulated else f"{r['gflops'] / r['ceiling']:.0%}"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['channels_last']} | {r['compile']} | {r['plain']:.3g} "
            f"| {r['framework']:.3g} | {r['ratio']:.2f} ({r['ratio_low']:.2f}-{r['ratio_high']:.2f}) "
            f"| {r['interleaved']:.2f} ({r['interleaved_low']:.2f}-{r['interleaved_high']:.2f}) "
            f"| {r['whole_run']:.2f} ({r['whole_run_steps']}) "
            f"| {r['gflops']:.0f} | {r['ceiling']:.0f} "
            f"| {share} | {r['plain_gib']:.2f} / {r['framework_gib']:.2f} |"
        )
    lines += [
        "",
        "Where the steps of the interleaved runs go: median milliseconds of each part of a step, from the loop's "
        "callback hooks (`src.train`) and the plain step's own clock (data and loop: from the end of the step "
        "before, or of the plain step after it, to the start of the next batch; forward and loss include "
        "zeroing the gradients and, in `src.train`, everything `training_step` does). Stepping two networks in "
        "turn slows each one's step in this process (the plain steps of these runs against the plain loop's own "
        "runs), which makes the interleaved ratio lean towards 1; the last column is therefore the difference "
        "against the plain loop's step in its own, faster run (its img/s above), the fairer share.",
        "",
        "| model | precision | channels-last | compile | loop | "
        + " | ".join(PHASES)
        + " | step | step difference | of the plain loop's own step |",
        "|---|---|---|---|---|" + "---|" * len(PHASES) + "---|---|---|",
    ]
    for r in rows:
        phases = r["phases"]
        for loop, parts in phases.items():
            extra = parts["step"] - phases["plain"]["step"]
            lines.append(
                f"| {r['model']} | {r['precision']} | {r['channels_last']} | {r['compile']} | {loop} | "
                + " | ".join(f"{parts[name] * 1e3:.1f}" for name in PHASES)
                + f" | {parts['step'] * 1e3:.1f} | "
                + (f"{extra * 1e3:+.1f} ({extra / phases['plain']['step']:+.1%})" if loop != "plain" else "")
                + " | "
                + (f"{extra / (r['batch_size'] / r['plain']):+.1%}" if loop != "plain" else "")
                + " |"
            )
    p = prediction
    lines += [
        "",
        f"Prediction on a large stack: `src.predict` (recipe network, tiles of 256, no TTA) over {args.predict_slices} "
        f"generated slices of {args.predict_size}x{args.predict_size} ({p['megapixels']:.1f} Mpx): "
        f"{p['seconds']:.1f} s including start-up ({p['megapixels'] / p['seconds']:.2f} Mpx/s), "
        f"peak memory {p['peak_gib']:.2f} GiB (the stack's float32 probabilities: {p['probability_gib']:.2f} GiB, "
        "streamed to disk slice by slice).",
        "",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
