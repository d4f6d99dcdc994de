"""Where an EM stack comes from: a published data set (ISBI 2012, VNC 2013), a user's own TIFFs, or a generated stack.

Each source has ``prepare()`` (run once, on one process: fetch, copy, verify) and ``load()`` (run on every
process) returning ``(images, labels)`` as ``(N, H, W)`` arrays as stored: labels keep the data set's own values
(the data module maps them to classes, :mod:`src.data.labels`). ``label_path`` names the label file for messages.
Sources kept in files also have ``volumes()``: the image and label volumes opened lazily, for training on volumes
larger than memory (``data.loading=lazy``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import tifffile

from src.data.download import fetch_verified, sha256_of_file
from src.data.synthetic import synthetic_stack
from src.data.tiff import Calibration, read_stack
from src.data.volume import LazyVolume, open_volume
from src.utils.errors import UserError

# sha256 of each file and of its raw pixel bytes (C order), from SOURCE.md beside each data set's files.
# A file passes if either matches, so the same pixels re-saved by another TIFF writer are accepted.
ISBI2012_SHA256 = {
    "train-volume.tif": (
        "fa9e351b9b9f5dc73606570ff011b4c5802f6e2bf5c95e75be75395eb8d9438f",
        "200da3d452d726e6c9ca1ce04b869d4edb727320d23b516d01cce707dc8c4760",
    ),
    "train-labels.tif": (
        "4eda38d6cd45985ce47aae052eb20c1dfdb925f8bf9a95de4d32973b29b0fe87",
        "a7cb64000a1a7e542682927e19c91339f58f9f178e0bcce4e207371116f0ca36",
    ),
    "test-volume.tif": (
        "63ab137f2bb1fa902794f11b86f1e117ae8cae5c113ad94329e5c754308c036f",
        "1b58fa7ec1d0ff9d39a855622db3ff66a97863036339b0d04be51b2f5a99b0e9",
    ),
}


# Gerhard et al. 2013, Drosophila larva VNC, stack 1 sections 0-13 and stack 2 (shared/data/vnc2013/SOURCE.md).
VNC2013_SHA256 = {
    "train-volume.tif": (
        "d014bf1d12730e83dc621000c1eebdda69f0e1761452bcb12f19ee332bfd3e4a",
        "c563c4ec6c1b445549ffe344381dd366cfacefc29a6b09667dcb2c5bcf32e978",
    ),
    "train-labels.tif": (
        "3b458b16da727c454aef2e524178a19c5e4bf85426f66c76bb0c2e7b38e8c0e5",
        "c9934e624b89444d3f11a2cddf5bfcb61ecc66213dc5c98ab69d32d8a2befc28",
    ),
    "test-volume.tif": (
        "f3e77486f1c2341f6bd47ad28c110fe625fdb2708b4768e81c485b1fa89aacb7",
        "9ebdc89403926df5b17f1650fd77b9a2e3e0ba835c3ead9a70199900b4514e5b",
    ),
}
PUBLISHED = {"isbi2012": ISBI2012_SHA256, "vnc2013": VNC2013_SHA256}
# (z, y, x) nanometres per voxel as each data set's description states it (SOURCE.md); their TIFFs carry none.
# VNC 2013's sections are 45-50 nm thick: 50 is the upper bound.
PUBLISHED_VOXEL_SIZE = {"isbi2012": (50.0, 4.0, 4.0), "vnc2013": (50.0, 4.6, 4.6)}
MIRROR_VARIABLE = {"isbi2012": "ISBI2012_MIRROR", "vnc2013": "VNC2013_MIRROR"}


def _matches(checksums: dict, name: str, path: Path) -> bool:
    file_sha, pixel_sha = checksums[name]
    if sha256_of_file(path) == file_sha:
        return True
    try:
        pixels = np.ascontiguousarray(tifffile.imread(path))
    except Exception:
        return False
    return pixels.dtype == np.uint8 and hashlib.sha256(pixels.tobytes()).hexdigest() == pixel_sha


class PublishedSource:
    """A published data set's training stack (``dataset``: isbi2012 or vnc2013), fetched into ``root`` from a
    mirror folder or ``base_url`` and verified by sha256."""

    def __init__(
        self,
        dataset: str,
        root: str,
        mirror: str | None = None,
        base_url: str | None = None,
        image_file: str = "train-volume.tif",
        label_file: str = "train-labels.tif",
        timeout: float = 60.0,
    ) -> None:
        if dataset not in PUBLISHED:
            raise UserError(f"data.source.dataset={dataset} must be one of {', '.join(PUBLISHED)}")
        self.dataset = dataset
        self.checksums = PUBLISHED[dataset]
        self.root = Path(root)
        self.mirror = mirror or None
        self.base_url = base_url.rstrip("/") if base_url else None
        self.files = (image_file, label_file)
        self.timeout = timeout
        self.label_path = self.root / label_file

    def prepare(self) -> None:
        for name in self.files:
            if name not in self.checksums:
                raise UserError(f"{name} is not a {self.dataset} file; expected one of {sorted(self.checksums)}")
            fetch_verified(
                name,
                self.root / name,
                verify=lambda path, name=name: _matches(self.checksums, name, path),
                mirror=self.mirror,
                url=f"{self.base_url}/{name}" if self.base_url else None,
                timeout=self.timeout,
                mirror_variable=MIRROR_VARIABLE[self.dataset],
            )

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        image_file, label_file = (self.root / name for name in self.files)
        return read_stack(image_file), read_stack(label_file, "label stack")

    def calibration(self) -> Calibration:
        return Calibration(PUBLISHED_VOXEL_SIZE[self.dataset], "nanometer")

    def volumes(self) -> tuple[LazyVolume, LazyVolume]:
        hint = "run the training task again to fetch it"
        image_file, label_file = (self.root / name for name in self.files)
        return LazyVolume(image_file, None, "image stack", hint), LazyVolume(label_file, None, "label stack", hint)


class IsbiSource(PublishedSource):
    """The ISBI 2012 training stack (the name configs written before VNC 2013 was added use)."""

    def __init__(self, root: str, **kwargs) -> None:
        super().__init__("isbi2012", root, **kwargs)


class TiffSource:
    """A user's own image and label volumes, by path (and key inside an HDF5 / Zarr / N5 container): any format
    :func:`src.data.volume.open_volume` reads, TIFF the commonest."""

    def __init__(self, images: str, labels: str, image_key: str | None = None, label_key: str | None = None) -> None:
        self.images = Path(images)
        self.labels = Path(labels)
        self.keys = image_key, label_key
        self.label_path = self.labels
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def prepare(self) -> None:
        for path in (self.images, self.labels):
            if not path.exists():
                raise UserError(f"{path} not found; set data.source.images and data.source.labels to your volumes")

    def calibration(self) -> Calibration | None:
        """The image volume's own voxel size, where its file states one with a unit."""
        with open_volume(self.images, self.keys[0], "image stack", "check data.source.images / image_key") as volume:
            return Calibration.of(volume)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Both stacks, read once: a check before training (src.data.preflight) and training share them."""
        if self._arrays is None:
            images, labels = self.volumes()
            self._arrays = images.volume.read_all(), labels.volume.read_all()
            images.close()
            labels.close()
        return self._arrays

    def volumes(self) -> tuple[LazyVolume, LazyVolume]:
        images = LazyVolume(self.images, self.keys[0], "image stack", "check data.source.images / image_key")
        labels = LazyVolume(self.labels, self.keys[1], "label stack", "check data.source.labels / label_key")
        shapes = images.volume.shape, labels.volume.shape
        if shapes[0] != shapes[1]:
            raise UserError(
                f"image stack {images.volume.where} has shape {shapes[0]} but label stack {labels.volume.where} has "
                f"{shapes[1]}; they must match slice for slice"
            )
        return images, labels


class SyntheticSource:
    """A generated EM-like stack (see :mod:`src.data.synthetic`), deterministic by seed."""

    def __init__(self, num_slices: int = 10, size: int = 128, num_cells: int = 30, seed: int = 0) -> None:
        self.kwargs = dict(num_slices=num_slices, size=size, num_cells=num_cells, seed=seed)
        self.label_path = "the generated label stack"

    def prepare(self) -> None:
        pass

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        return synthetic_stack(**self.kwargs)


def source_calibration(source) -> Calibration | None:
    """The voxel size of a data source's images (what the held-out TIFFs state), None where it has none."""
    return source.calibration() if hasattr(source, "calibration") else None
