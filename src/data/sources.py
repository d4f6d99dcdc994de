"""Where an EM stack comes from: the ISBI 2012 files, a user's own TIFFs, or a generated stack.

Each source has ``prepare()`` (run once, on one process: fetch, copy, verify) and ``load()`` (run on every
process) returning ``(images, labels)`` as ``(N, H, W)`` arrays, images raw and labels 0/1 interior masks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import tifffile

from src.data.download import fetch_verified, sha256_of_file
from src.data.labels import binary_labels
from src.data.synthetic import synthetic_stack
from src.data.tiff import read_stack
from src.utils.errors import UserError

# sha256 of each file and of its raw pixel bytes (C order), from shared/data/isbi2012/SOURCE.md.
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


def _matches_isbi(name: str, path: Path) -> bool:
    file_sha, pixel_sha = ISBI2012_SHA256[name]
    if sha256_of_file(path) == file_sha:
        return True
    try:
        pixels = np.ascontiguousarray(tifffile.imread(path))
    except Exception:
        return False
    return (
        pixels.shape == (30, 512, 512)
        and pixels.dtype == np.uint8
        and (hashlib.sha256(pixels.tobytes()).hexdigest() == pixel_sha)
    )


class IsbiSource:
    """The ISBI 2012 training stack, fetched into ``root`` from a mirror folder or ``base_url``."""

    def __init__(
        self,
        root: str,
        mirror: str | None = None,
        base_url: str | None = None,
        image_file: str = "train-volume.tif",
        label_file: str = "train-labels.tif",
        timeout: float = 60.0,
    ) -> None:
        self.root = Path(root)
        self.mirror = mirror or None
        self.base_url = base_url.rstrip("/") if base_url else None
        self.files = (image_file, label_file)
        self.timeout = timeout

    def prepare(self) -> None:
        for name in self.files:
            if name not in ISBI2012_SHA256:
                raise UserError(f"{name} is not an ISBI 2012 file; expected one of {sorted(ISBI2012_SHA256)}")
            fetch_verified(
                name,
                self.root / name,
                verify=lambda path, name=name: _matches_isbi(name, path),
                mirror=self.mirror,
                url=f"{self.base_url}/{name}" if self.base_url else None,
                timeout=self.timeout,
            )

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        image_file, label_file = (self.root / name for name in self.files)
        return read_stack(image_file), binary_labels(read_stack(label_file, "label stack"), label_file)


class TiffSource:
    """A user's own image and label stacks, by path."""

    def __init__(self, images: str, labels: str) -> None:
        self.images = Path(images)
        self.labels = Path(labels)

    def prepare(self) -> None:
        for path in (self.images, self.labels):
            if path.is_dir():
                raise UserError(f"{path} is a folder; set data.source.images and data.source.labels to TIFF files")
            if not path.is_file():
                raise UserError(f"{path} not found; set data.source.images and data.source.labels to TIFF files")

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        images = read_stack(self.images)
        labels = read_stack(self.labels, "label stack")
        if images.shape != labels.shape:
            raise UserError(
                f"image stack {self.images} has shape {images.shape} but label stack {self.labels} has "
                f"{labels.shape}; they must match slice for slice"
            )
        return images, binary_labels(labels, self.labels)


class SyntheticSource:
    """A generated EM-like stack (see :mod:`src.data.synthetic`), deterministic by seed."""

    def __init__(self, num_slices: int = 10, size: int = 128, num_cells: int = 30, seed: int = 0) -> None:
        self.kwargs = dict(num_slices=num_slices, size=size, num_cells=num_cells, seed=seed)

    def prepare(self) -> None:
        pass

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        images, labels = synthetic_stack(**self.kwargs)
        return images, binary_labels(labels)
