"""Shared fixtures: the real ISBI 2012 stack beside the project, small synthetic TIFF stacks, config helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from src.config import PROJECT_ROOT, setup
from src.data.synthetic import synthetic_stack

SHARED_ISBI = PROJECT_ROOT.parent / "shared" / "data" / "isbi2012"
SHARED_VNC = PROJECT_ROOT.parent / "shared" / "data" / "vnc2013"


def _shared_data(name: str, variable: str, default: Path) -> Path:
    """A verified data set's folder: ``variable`` if set, else ../shared/data/<set> (part of the test environment)."""
    mirror = Path(os.environ.get(variable) or default)
    assert (mirror / "train-volume.tif").is_file() and (mirror / "train-labels.tif").is_file(), (
        f"the {name} stack is expected in {mirror}; set {variable} to a folder holding it"
    )
    return mirror


@pytest.fixture(scope="session")
def isbi_dir() -> Path:
    """The verified ISBI 2012 copy in ../shared/data/isbi2012."""
    return _shared_data("ISBI 2012", "ISBI2012_MIRROR", SHARED_ISBI)


@pytest.fixture(scope="session")
def isbi_stack(isbi_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return tifffile.imread(isbi_dir / "train-volume.tif"), tifffile.imread(isbi_dir / "train-labels.tif")


@pytest.fixture(scope="session")
def vnc_dir() -> Path:
    """The verified VNC 2013 copy in ../shared/data/vnc2013 (five classes)."""
    return _shared_data("VNC 2013", "VNC2013_MIRROR", SHARED_VNC)


def write_volume_copies(stack: np.ndarray, folder: Path) -> dict[str, tuple[Path, str | None]]:
    """One ``(Z, Y, X)`` stack as TIFF, HDF5, Zarr v2 / v3, OME-Zarr, N5 and a PNG folder: {format: (path, key)}.

    The N5 is written block by block by hand (raw blocks, big-endian headers, dimensions x, y, z as Java's N5
    writes them), so reading it checks the axis order against the format, not against the library that reads it.
    """
    import json
    import struct

    import h5py
    import zarr
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    z, y, x = stack.shape
    copies = {"tiff": (folder / "v.tif", None), "hdf5": (folder / "v.h5", "volumes/raw")}
    tifffile.imwrite(copies["tiff"][0], stack)
    with h5py.File(copies["hdf5"][0], "w") as f:
        f.create_dataset("volumes/raw", data=stack, chunks=(1, min(y, 64), min(x, 64))).attrs["resolution"] = [50, 4, 4]
    for version in (2, 3):
        group = zarr.open_group(folder / f"v{version}.zarr", mode="w", zarr_format=version)
        group.create_array("raw", shape=stack.shape, chunks=(1, 64, 64), dtype=stack.dtype)[:] = stack
        copies[f"zarr{version}"] = (folder / f"v{version}.zarr", "raw")
    ome = zarr.open_group(folder / "ome.zarr", mode="w", zarr_format=2)
    ome.create_array("0", shape=stack.shape, chunks=(1, 64, 64), dtype=stack.dtype)[:] = stack
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [50.0, 4.0, 4.0]}]
    ome.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    copies["ome-zarr"] = (folder / "ome.zarr", None)
    n5 = folder / "v.n5" / "raw"
    n5.mkdir(parents=True)
    (folder / "v.n5" / "attributes.json").write_text('{"n5": "2.5.0"}')
    block = (64, 64, 1)  # x, y, z
    meta = {"dimensions": [x, y, z], "blockSize": list(block), "dataType": str(stack.dtype)}
    (n5 / "attributes.json").write_text(json.dumps({**meta, "compression": {"type": "raw"}, "resolution": [4, 4, 50]}))
    for k in range(z):
        for j in range(0, y, block[1]):
            for i in range(0, x, block[0]):
                data = stack[k, j : j + block[1], i : i + block[0]]
                path = n5 / str(i // block[0]) / str(j // block[1]) / str(k)
                path.parent.mkdir(parents=True, exist_ok=True)
                header = struct.pack(">HHIII", 0, 3, data.shape[1], data.shape[0], 1)
                path.write_bytes(header + data.astype(data.dtype.newbyteorder(">")).tobytes())
    copies["n5"] = (folder / "v.n5", "raw")
    pngs = folder / "pngs"
    pngs.mkdir()
    for k in range(z):
        Image.fromarray(stack[k]).save(pngs / f"slice{k * 5}.png")  # 0, 5, 10: name order is not string order
    copies["png-folder"] = (pngs, None)
    return copies


@pytest.fixture()
def synthetic_tiffs(tmp_path: Path) -> tuple[Path, Path]:
    images, labels = synthetic_stack(num_slices=10, size=96, num_cells=20, seed=3)
    image_path, label_path = tmp_path / "images.tif", tmp_path / "labels.tif"
    tifffile.imwrite(image_path, images)
    tifffile.imwrite(label_path, labels)
    return image_path, label_path


def compose_config(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose a config as the command line would (Hydra-only keys such as ``hydra:runtime`` stay unresolved)."""
    setup()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [], return_hydra_config=True)


def run_cli(module: str, *overrides: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <overrides>`` from the project root as a user would."""
    full_env = {**os.environ, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def run_clis(calls: list[tuple[str, ...]], workers: int = 2, **kwargs) -> list[subprocess.CompletedProcess]:
    """:func:`run_cli` of each ``(module, *overrides)``, ``workers`` at a time (each a process that mostly imports,
    one thread each), results in the order of ``calls``."""
    from concurrent.futures import ThreadPoolExecutor

    env = {"OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda call: run_cli(*call, env=env, **kwargs), calls))


def write_small_checkpoint(path: Path, depth: int = 3, padding: str = "valid") -> Path:
    """Write a checkpoint as src.train saves it (hyperparameters + weights) of a small, untrained U-Net."""
    import torch

    from src.models.module import SegmentationModule

    torch.manual_seed(0)
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": depth, "base_channels": 4, "padding": padding},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01},
    )
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def small_module(members: int = 1, classes: list[str] | None = None, affinities: list | None = None):
    """A small, untrained SegmentationModule of ``members`` U-Nets whose outputs are ``classes`` (None: membrane and
    interior, with the membrane as the boundary; named classes have none) and the affinities of ``affinities``."""
    from src.models.module import SegmentationModule

    net = {"_target_": "src.models.unet.build_unet", "members": members, "depth": 2, "base_channels": 4}
    if classes or affinities:
        net["num_classes"] = len(classes or ["membrane", "interior"]) + len(affinities or [])
    return SegmentationModule(
        net=net,
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        classes=classes,
        boundary_class=None if classes else 0,
        affinities={"offsets": affinities} if affinities else None,
    )


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of a small, untrained valid-padding U-Net."""
    return write_small_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.ckpt")


def imported_modules(result: subprocess.CompletedProcess) -> set[str]:
    """The modules a command run with ``PYTHONPROFILEIMPORTTIME=1`` imported (from its import log on stderr)."""
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings of the same pixels are the same up to their numbers (0 counted as a label too)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))
