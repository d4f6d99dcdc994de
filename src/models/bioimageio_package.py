"""A bioimage.io model package of a trained U-Net (``python -m src.export format=bioimageio``).

The package (a zip holding ``rdf.yaml``) is what the bioimage.io model zoo and the tools that read it (deepImageJ
in Fiji, ilastik, napari, QuPath, bioimageio.core) run: the network as TorchScript, ONNX and a state dict with
its architecture, the pre-processing it was trained with (each slice to zero mean and unit variance), its output
channels by name, a held-out slice and the network's output on it as test tensors, a cover from the run's
results figure, the training data's citation and terms, and the run's held-out scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from src.utils.errors import UserError

INPUT, OUTPUT = "raw", "probabilities"


def channel_names(classes: list[str], offsets) -> list[str]:
    """The output channels: each class's probability, then each offset's affinity."""
    return [*classes, *(f"affinity {list(o)}" for o in offsets)]


def run_facts(ckpt: Path) -> dict:
    """What the checkpoint's run folder says about it (the folder above ``checkpoints/``): its config, held-out
    scores and files; empty where the checkpoint does not sit in a run folder."""
    run = ckpt.resolve().parent.parent
    facts: dict = {"run": run}
    if (run / "metrics.json").exists():
        facts["metrics"] = json.loads((run / "metrics.json").read_text())
    if (run / "config.yaml").exists():
        from omegaconf import OmegaConf

        facts["config"] = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))
    return facts


def test_slice(facts: dict, test_input: str | None, index: int) -> np.ndarray:
    """The raw held-out slice the package is tested on: slice ``index`` of ``test_input`` or, by default, of the
    run's held-out images (``predictions/test_images.tif``)."""
    from src.data.volume import open_volume

    if test_input is None:
        files = facts.get("metrics", {}).get("held_out", {}).get("files", {})
        if "test_images.tif" not in files:
            raise UserError(
                f"{facts['run']} holds no held-out images (metrics.json from src.train); pass test_input=<TIFF of "
                "raw slices> for the package's test tensor"
            )
        test_input = str(facts["run"] / files["test_images.tif"])
    with open_volume(test_input, None, "bioimageio.test_input", "check bioimageio.test_input=") as volume:
        if not 0 <= index < len(volume):
            raise UserError(
                f"bioimageio.test_slice={index} is out of range: {test_input} has {len(volume)} slices "
                f"(0 to {len(volume) - 1})"
            )
        return volume.read(index).astype(np.float32)


def dataset_terms(facts: dict, datasets: dict) -> dict:
    """The training data's name, citations and terms from ``datasets`` (conf/export.yaml), by the run's data."""
    source = facts.get("config", {}).get("data", {}).get("source", {})
    synthetic = str(source.get("_target_", "")).endswith("SyntheticSource")
    name = source.get("dataset") or ("synthetic" if synthetic else Path(str(source.get("images", "own data"))).name)
    return {"name": name, **datasets.get(name, {})}


def cover_image(facts: dict, path: Path) -> Path | None:
    """The run's latest results figure, padded with white to the 2:1 that bioimage.io shows covers at."""
    from PIL import Image

    figure = facts["run"] / "figures" / "latest.png"
    if not figure.exists():
        return None
    image = Image.open(figure).convert("RGB")
    width, height = image.size
    canvas = Image.new("RGB", (max(width, 2 * height), max(height, (width + 1) // 2)), "white")
    canvas.paste(image, ((canvas.width - width) // 2, (canvas.height - height) // 2))
    canvas.save(path)
    return path


def documentation(name: str, classes: list[str], offsets, data: dict, scores: dict | None) -> str:
    """The package's README: what the model does, its input and outputs, the training data and held-out scores."""
    lines = [
        f"# {name}",
        "",
        "A U-Net (Ronneberger et al. 2015) trained with the emunet framework to label every pixel of an electron-",
        "microscopy slice. Input: one greyscale slice (`raw`, axes batch, channel, y, x), standardised per slice to",
        "zero mean and unit variance by the package's pre-processing. Output (`probabilities`): the probability of",
        f"each class ({', '.join(classes)})"
        + (", then the affinity of each offset (same-cell pairs)." if offsets else "."),
        "",
        f"## Training data: {data['name']}",
        "",
        data.get("terms", "Trained on the user's own data; see its terms."),
    ]
    if scores:
        lines += [
            "",
            "## Validation",
            "",
            "Held-out scores of the training run (ISBI 2012 protocol, its held-out slices):",
        ]
        lines += ["", "| metric | value |"]
        lines += ["| --- | --- |"] + [f"| {k} | {v:.4f} |" for k, v in scores.items() if isinstance(v, float)]
        lines += ["", f"Scored: {scores['scored output']} of slices {scores['slices']}, by the run's inference recipe"]
        lines += ["(test-time augmentation and post-processing included; the package itself gives the probabilities)."]
    return "\n".join(lines) + "\n"


def held_out_scores(facts: dict) -> dict | None:
    headline = facts.get("metrics", {}).get("headline")
    if not headline:
        return None
    scores = {"V_rand": headline["vrand"], "V_info": headline["vinfo"]}
    scores.update({f"Dice {name}": value for name, value in headline.get("dice", {}).items()})
    return {**scores, "scored output": headline.get("what", ""), "slices": headline.get("slices", [])}


def write_test_tensors(work: Path, raw: np.ndarray, expected: np.ndarray) -> None:
    """The test tensors (``.npy``: raw input, the network's output on it) and the same as sample TIFFs."""
    import tifffile

    np.save(work / "test_input.npy", raw)
    np.save(work / "test_output.npy", expected)
    tifffile.imwrite(work / "sample_input.tif", raw)
    tifffile.imwrite(work / "sample_output.tif", expected)


def _axes(net, depth: int):
    """Input and output axes: batch, channel, y, x; y and x any size the network takes (same padding: multiples
    of ``2**depth``), the output's the input's (same padding) or smaller by the valid convolutions' crop."""
    from bioimageio.spec.model import v0_5 as spec

    step = 2**depth
    smallest = net.valid_input_size(step)
    shrink = smallest - net.output_size(smallest) if net.padding == "valid" else 0
    inputs = [spec.BatchAxis(), spec.ChannelAxis(channel_names=["em"])]
    outputs = [spec.BatchAxis()]
    for axis in ("y", "x"):
        inputs.append(spec.SpaceInputAxis(id=spec.AxisId(axis), size=spec.ParameterizedSize(min=smallest, step=step)))
        size = spec.SizeReference(tensor_id=spec.TensorId(INPUT), axis_id=spec.AxisId(axis), offset=-shrink)
        outputs.append(spec.SpaceOutputAxis(id=spec.AxisId(axis), size=size))
    return inputs, outputs


def write_weights(module, work: Path, settings, facts: dict, opset: int) -> None:
    """The network as TorchScript, ONNX and a state dict, and the test tensors: its output on a held-out slice."""
    from src.models.exported import ClassProbabilities, write_onnx, write_torchscript

    net = module.net.float().eval()
    offsets = tuple(getattr(module, "offsets", ()))
    model = ClassProbabilities(net, len(offsets)).eval()
    raw = test_slice(facts, settings.test_input, settings.test_slice)
    image = (raw - raw.mean()) / (raw.std() + 1e-6)  # the package's pre-processing (zero_mean_unit_variance)
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    (net.members[0] if hasattr(net, "members") else net).check_input(x)
    with torch.no_grad():
        expected = model(x).numpy()
        write_torchscript(model, x, work / "weights.pt")
        write_onnx(model, torch.cat([x, x]), work / "weights.onnx", opset, OUTPUT)
    torch.save(model.state_dict(), work / "state_dict.pt")
    write_test_tensors(work, raw[None, None], expected)


def _tensors(spec, module, work: Path) -> tuple[list, list]:
    """The input (standardised per slice by the package) and output (probabilities by channel name) tensors."""
    net = module.net.members[0] if hasattr(module.net, "members") else module.net
    inputs, outputs = _axes(net, net.depth)
    names = channel_names(list(module.classes), tuple(getattr(module, "offsets", ())))
    standardise = spec.ZeroMeanUnitVarianceKwargs(axes=[spec.AxisId("y"), spec.AxisId("x")], eps=1e-6)
    raw = spec.InputTensorDescr(
        id=spec.TensorId(INPUT),
        axes=inputs,
        test_tensor=spec.FileDescr(source=work / "test_input.npy"),
        sample_tensor=spec.FileDescr(source=work / "sample_input.tif"),
        preprocessing=[spec.ZeroMeanUnitVarianceDescr(kwargs=standardise)],
    )
    probabilities = spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT),
        axes=[outputs[0], spec.ChannelAxis(channel_names=names), *outputs[1:]],
        test_tensor=spec.FileDescr(source=work / "test_output.npy"),
        sample_tensor=spec.FileDescr(source=work / "sample_output.tif"),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )
    return [raw], [probabilities]


def _weights(spec, module, work: Path, opset: int):
    """The three weight formats; the state dict is the original (its architecture: ``PackagedUNet``)."""
    version = torch.__version__.split("+")[0]
    offsets = tuple(getattr(module, "offsets", ()))
    net = (
        OmegaConf.to_container(module.hparams["net"])
        if OmegaConf.is_config(module.hparams["net"])
        else module.hparams["net"]
    )
    architecture = spec.ArchitectureFromLibraryDescr(
        callable=spec.Identifier("PackagedUNet"),
        import_from="src.models.exported",
        kwargs={"classes": len(module.classes), "affinities": len(offsets), "net": dict(net)},
    )
    return spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(
            source=work / "weights.pt", pytorch_version=version, parent="pytorch_state_dict"
        ),
        onnx=spec.OnnxWeightsDescr(source=work / "weights.onnx", opset_version=opset, parent="pytorch_state_dict"),
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=work / "state_dict.pt", architecture=architecture, pytorch_version=version
        ),
    )


def describe_package(module, work: Path, settings, facts: dict, opset: int):
    """Write the package's files into ``work`` and return its bioimage.io description (spec 0.5); pydantic's
    ValidationError (a ValueError) where the spec refuses a field."""
    from bioimageio.spec.model import v0_5 as spec

    write_weights(module, work, settings, facts, opset)
    offsets = tuple(getattr(module, "offsets", ()))
    data = dataset_terms(facts, dict(settings.datasets))
    scores = held_out_scores(facts)
    name = settings.name or f"EM U-Net {data['name']} " + " ".join(module.classes)
    (work / "README.md").write_text(documentation(name, list(module.classes), offsets, data, scores))
    cover = cover_image(facts, work / "cover.png")
    cite = [spec.CiteEntry(text=c["text"], doi=spec.Doi(c["doi"])) for c in data.get("cite", [])]
    cite.append(spec.CiteEntry(text="Ronneberger, Fischer, Brox: U-Net (MICCAI 2015)", doi=spec.Doi(UNET_DOI)))
    inputs, outputs = _tensors(spec, module, work)
    return spec.ModelDescr(
        name=name,
        description=f"U-Net for {', '.join(module.classes)} in EM slices, trained on {data['name']}",
        authors=[spec.Author(name=a) for a in settings.authors],
        cite=cite,
        license=spec.LicenseId(data.get("licence") or settings.license),
        documentation=spec.FileDescr(source=work / "README.md"),
        covers=[spec.FileDescr(source=cover)] if cover else [],
        tags=["electron-microscopy", "semantic-segmentation", "unet", "2d", "pytorch", data["name"]],
        inputs=inputs,
        outputs=outputs,
        weights=_weights(spec, module, work, opset),
        config={"emunet": {"held_out": scores, "offsets": [list(o) for o in offsets]}},
    )


UNET_DOI = "10.1007/978-3-319-24574-4_28"


def write_package(module, ckpt: Path, path: Path, settings, opset: int) -> dict:
    """Build the package in a temporary folder, save it as a zip, and test it with ``bioimageio.core`` (offline);
    it is renamed to ``path`` only when the test passes. Returns the test's summary in a few fields."""
    import tempfile

    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package

    from src.utils.atomic import atomic_path

    facts = run_facts(ckpt)
    with tempfile.TemporaryDirectory() as tmp, atomic_path(path) as partial:
        try:
            description = describe_package(module, Path(tmp), settings, facts, opset)
        except ValueError as error:  # pydantic's ValidationError: the spec refuses what was described
            reason = (error.errors()[0]["msg"] if hasattr(error, "errors") else str(error)).strip().splitlines()[0]
            raise UserError(f"the bioimage.io description is not valid ({reason}); nothing written") from None
        save_bioimageio_package(description, output_path=partial)
        summary = test_model(partial)
        if summary.status != "passed":
            failed = [d for d in summary.details if d.status == "failed"]
            reason = failed[0].errors[0].msg if failed and failed[0].errors else summary.status
            reason = f"{failed[0].name}: {reason.strip().splitlines()[0]}" if failed else reason
            raise UserError(f"the bioimage.io package failed bioimageio.core's test ({reason}); nothing written")
    return {"name": description.name, "test": summary.status, "weights": ["torchscript", "onnx", "pytorch_state_dict"]}
