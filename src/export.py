"""Export a trained U-Net for use outside this project: ``python -m src.export ckpt_path=... format=onnx``
(or ``format=bioimageio``: a bioimage.io model package, :mod:`src.models.bioimageio_package`).

The exported model maps a standardised image batch ``(B, 1, H, W)`` (each slice shifted to mean 0 and scaled
to standard deviation 1, as in training) to the interior probability ``(B, 1, H', W')``. ``H`` and ``W`` must
be sizes the network takes: multiples of ``2**depth`` for ``same`` padding (then ``H' = H``), or valid sizes for
``valid`` padding (``python -m src.export`` prints the sizes it checked). Before the file gets its final
name, its output is compared with the checkpoint's on random inputs of several sizes.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from omegaconf import DictConfig

from src.utils.cli import run_task
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def _checked_settings(cfg: DictConfig, formats: dict) -> list[int]:
    """The format and the check's sizes and tolerance, refused before the checkpoint is read; the sizes."""
    if cfg.format not in formats:
        raise UserError(f"format={cfg.format} is not one of {', '.join(formats)}")
    sides = list(cfg.check_sides)
    if not sides or any(side < 1 for side in sides):
        raise UserError(f"check_sides={sides} must list one or more positive sizes the export is compared at")
    if not cfg.tolerance >= 0:
        raise UserError(f"tolerance={cfg.tolerance} must be 0 or more (the largest accepted difference)")
    suffix, named = Path(cfg.output or "").suffix.lower(), {s: f for f, s in formats.items() if f != cfg.format}
    if suffix in named:  # another format's file name: the wrong format= or a misleading name
        raise UserError(
            f"output={cfg.output} has the suffix of format={named[suffix]}, but format={cfg.format} writes "
            f"{formats[cfg.format]}; pass format={named[suffix]} or name the output *{formats[cfg.format]}"
        )
    if cfg.format == "bioimageio" and not list(cfg.bioimageio.authors):
        raise UserError(
            "bioimageio.authors=[] names no one; give the package's authors, e.g. 'bioimageio.authors=[Ada L]' "
            "(the bioimage.io Model Zoo asks for at least one)"
        )
    return sides


def export(cfg: DictConfig) -> dict:
    # Imported once the config is composed: a bad key fails in about a second (docs/speed.md).
    import torch

    from src.models.checkpoint import load_network
    from src.models.exported import (
        SUFFIX,
        check_sizes,
        exported_model,
        largest_difference,
        runner,
        write_onnx,
        write_torchscript,
    )
    from src.utils.atomic import atomic_path

    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one line per merged weight otherwise
    sides = _checked_settings(cfg, SUFFIX)
    ckpt = Path(cfg.ckpt_path)
    # Default: beside the checkpoint, named for it and the network, e.g. checkpoints/last-unet.onnx.
    path = Path(cfg.output) if cfg.output else ckpt.with_name(f"{ckpt.stem}-unet{SUFFIX[cfg.format]}")
    if path.exists() and not cfg.overwrite:
        raise UserError(f"{path} exists; choose another output= or pass overwrite=true")
    module = load_network(ckpt)
    if cfg.format == "bioimageio":
        from src.models.bioimageio_package import write_package

        summary = {"path": str(path.resolve()), "format": cfg.format}
        summary.update(write_package(module, ckpt, path, cfg.bioimageio, cfg.opset))
        print(json.dumps(summary, indent=2))
        print(f"bioimage.io package (passed bioimageio.core's test): {summary['path']}", file=sys.stderr)
        return summary
    model, output = exported_model(module)
    sizes = check_sizes(module.net, sides)
    example = torch.randn(2, 1, sizes[0], sizes[0])  # batch 2: a batch of 1 would be fixed in the graph
    with atomic_path(path) as tmp:
        with torch.no_grad():
            if cfg.format == "torchscript":
                write_torchscript(model, example, tmp)
            else:
                write_onnx(model, example, tmp, cfg.opset, output)
        worst = largest_difference(model, runner(cfg.format, tmp), sizes)
        if worst > cfg.tolerance:
            raise UserError(f"exported model differs from the checkpoint by {worst:.3g} (> tolerance={cfg.tolerance})")
    summary = {
        "path": str(path.resolve()),
        "format": cfg.format,
        "input": "(B, 1, H, W) standardised image",
        "output": describe_output(output, module.classes, module.offsets),
        "checked_sizes": sizes,
        "max_abs_diff": worst,
    }
    print(json.dumps(summary, indent=2))
    where = "" if cfg.output else " (beside the checkpoint; output=PATH writes elsewhere)"
    print(f"exported {cfg.format} model: {summary['path']}{where}", file=sys.stderr)
    return summary


def describe_output(output: str, classes: list[str], offsets) -> str:
    """The exported model's output in words, for the summary."""
    if output == "interior":
        return "(B, 1, H', W') interior probability"
    what = f"(B, {len(classes) + len(offsets)}, H', W') probability of each class: {', '.join(classes)}"
    return what + (f"; then the affinity of each offset: {[list(o) for o in offsets]}" if offsets else "")


def main() -> None:
    run_task(export, "export")


if __name__ == "__main__":
    main()
