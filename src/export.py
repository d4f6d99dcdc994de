"""Export a trained U-Net for use outside this project: ``python -m src.export ckpt_path=... format=onnx``.

The exported model maps a standardised image batch ``(B, 1, H, W)`` (each slice shifted to mean 0 and scaled
to standard deviation 1, as in training) to the interior probability ``(B, 1, H', W')``. ``H`` and ``W`` must
be sizes the network takes: multiples of ``2**depth`` for ``same`` padding (then ``H' = H``), or valid sizes for
``valid`` padding (``python -m src.export`` prints the sizes it checked). Before the file gets its final
name, its output is compared with the checkpoint's on random inputs of several sizes.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from src.models.checkpoint import load_module
from src.models.unet import UNet
from src.utils.atomic import atomic_path
from src.utils.cli import run_task
from src.utils.errors import UserError

log = logging.getLogger(__name__)

SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


class InteriorProbability(nn.Module):
    """The network followed by the softmax, keeping the cell-interior channel."""

    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).softmax(dim=1)[:, 1:2]


def check_sizes(net: UNet, sides: list[int]) -> list[int]:
    """Per requested side, the smallest input whose output is at least that side (same padding: a multiple of
    ``2**depth`` at or above it)."""
    return sorted({net.valid_input_size(side) for side in sides})


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise UserError("format=onnx needs the export extra: pip install -e '.[export]'") from None
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=["image"],
        output_names=["interior"],
        dynamic_shapes={"image": dims},
        verbose=False,
    )
    program.save(str(path))


def _runner(fmt: str, path: Path):
    if fmt == "torchscript":
        loaded = torch.jit.load(str(path))

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return loaded(torch.from_numpy(x)).numpy()

        return run
    try:
        import onnxruntime
    except ImportError:
        raise UserError("checking the ONNX file needs onnxruntime: pip install -e '.[export]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def _largest_difference(model: nn.Module, run, sizes: list[int]) -> float:
    """The largest difference between the exported model's probabilities and the checkpoint's, on random inputs
    of the checked sizes (square and not)."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for height in sizes:
        for width in (sizes[0], height):
            x = torch.randn(2, 1, height, width, generator=generator)
            with torch.no_grad():
                expected = model(x).numpy()
            got = run(x.numpy())
            if got.shape != expected.shape:
                raise UserError(
                    f"exported model gives shape {got.shape} for input {tuple(x.shape)}, "
                    f"the checkpoint {expected.shape}; the export is not usable"
                )
            worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export(cfg: DictConfig) -> dict:
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one line per merged weight otherwise
    if cfg.format not in SUFFIX:
        raise UserError(f"format={cfg.format} is not one of {', '.join(SUFFIX)}")
    ckpt = Path(cfg.ckpt_path)
    path = Path(cfg.output) if cfg.output else ckpt.with_suffix(SUFFIX[cfg.format])
    if path.exists() and not cfg.overwrite:
        raise UserError(f"{path} exists; choose another output= or pass overwrite=true")
    module = load_module(ckpt)
    model = InteriorProbability(module.net.float().eval()).eval()
    sizes = check_sizes(module.net, list(cfg.check_sides))
    example = torch.randn(2, 1, sizes[0], sizes[0])  # batch 2: a batch of 1 would be fixed in the graph
    with atomic_path(path) as tmp:
        with torch.no_grad():
            if cfg.format == "torchscript":
                _write_torchscript(model, example, tmp)
            else:
                _write_onnx(model, example, tmp, cfg.opset)
        worst = _largest_difference(model, _runner(cfg.format, tmp), sizes)
        if worst > cfg.tolerance:
            raise UserError(f"exported model differs from the checkpoint by {worst:.3g} (> tolerance={cfg.tolerance})")
    summary = {
        "path": str(path.resolve()),
        "format": cfg.format,
        "input": "(B, 1, H, W) standardised image",
        "output": "(B, 1, H', W') interior probability",
        "checked_sizes": sizes,
        "max_abs_diff": worst,
    }
    print(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    run_task(export, "export")


if __name__ == "__main__":
    main()
