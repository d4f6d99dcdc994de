"""Writing a trained U-Net as a TorchScript or ONNX file and checking it against the checkpoint (``src.export``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from src.inference.regions import output_probabilities
from src.models.unet import UNet
from src.utils.errors import UserError

SUFFIX = {"torchscript": ".pt", "onnx": ".onnx", "bioimageio": ".zip"}


class ClassProbabilities(nn.Module):
    """The network followed by its probabilities as inference computes them
    (:func:`src.inference.regions.output_probabilities`): every class's, in the checkpoint's class order, then the
    sigmoid of the last ``affinity_channels`` (a network trained with model.target=affinities)."""

    def __init__(self, net: nn.Module, affinity_channels: int = 0) -> None:
        super().__init__()
        self.net, self.affinity_channels = net, affinity_channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return output_probabilities(self.net(image), self.affinity_channels)


class InteriorProbability(ClassProbabilities):
    """The cell-interior channel of a two-class network's probabilities."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return super().forward(image)[:, 1:2]


class PackagedUNet(ClassProbabilities):
    """A U-Net built from its config (``net``, as the checkpoint holds it) followed by its ``classes``'
    probabilities and its ``affinities``: the architecture a bioimage.io package's state dict names (``classes``
    stays a keyword for the packages that name it; the network's channels already say it)."""

    def __init__(self, classes: int, affinities: int, net: dict) -> None:
        from src.models.unet import build_unet

        super().__init__(build_unet(**{k: v for k, v in net.items() if k != "_target_"}), affinities)


def exported_model(module: nn.Module) -> tuple[nn.Module, str]:
    """What a checkpoint is exported as, and the output's name: the cells' probability of a two-class network (as
    training scores it), every class's probability otherwise, and then the affinities where it has them."""
    net = module.net.float().eval()
    if getattr(module, "offsets", ()):
        return ClassProbabilities(net, len(module.offsets)).eval(), "classes_affinities"
    if len(module.classes) == 2 and module.boundary_class == 0:
        return InteriorProbability(net).eval(), "interior"
    return ClassProbabilities(net).eval(), "classes"


def check_sizes(net: UNet, sides: list[int]) -> list[int]:
    """Per requested side, the smallest input whose output is at least that side (same padding: a multiple of
    ``2**depth`` at or above it)."""
    return sorted({net.valid_input_size(side) for side in sides})


def write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int, output: str = "interior") -> None:
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
        output_names=[output],
        dynamic_shapes={"image": dims},
        verbose=False,
    )
    written = program.model.opset_imports.get("", opset)
    if written != opset:  # where it cannot convert down that far it keeps its own opset without a word
        raise UserError(f"opset={opset}: torch's ONNX exporter wrote opset {written} instead; ask for a higher opset")
    program.save(str(path))


def runner(fmt: str, path: Path):
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


def largest_difference(model: nn.Module, run, sizes: list[int]) -> float:
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
