"""One reader for EM volumes in the field's formats: TIFF, HDF5, Zarr (v2, v3, OME-Zarr), N5, PNG and folders of slices.

:func:`open_volume` gives a :class:`Volume`: its ``(Z, Y, X)`` shape, dtype, chunks, axes and voxel size where
the file records them, and lazy reads of one slice or any box, so a volume larger than memory is never loaded
whole. A container format (HDF5, Zarr, N5) takes the dataset's ``key`` inside it, as the field gives it
(``vol.h5`` + ``raw``); an OME-Zarr image needs none (its first, full-resolution level is read). Every problem
with the input (missing, damaged, truncated, missing key, wrong rank) is one :class:`UserError` naming the file
and key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.utils.errors import UserError

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".cxi")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
MAGIC = {b"\x89HDF\r\n\x1a\n": "hdf5", b"II*\x00": "tiff", b"MM\x00*": "tiff", b"II+\x00": "tiff",
         b"MM\x00+": "tiff", b"\x89PNG": "png"}  # fmt: skip


class Volume:
    """A ``(Z, Y, X)`` greyscale volume read lazily; subclasses implement :meth:`_read` for one box."""

    format = "volume"

    def __init__(self, path: Path, key: str | None, what: str, hint: str = "check the path and key") -> None:
        self.path, self.key, self.what = path, key, what
        self.hint = hint  # how to fix a missing key
        self.shape: tuple[int, int, int] = (0, 0, 0)
        self.dtype = np.dtype("uint8")
        self.chunks: tuple[int, int, int] | None = None
        self.axes = "zyx"
        self.voxel_size: tuple[float, float, float] | None = None  # (z, y, x) in ``unit``
        self.unit: str | None = None
        self.metadata: dict = {}  # what the writer recorded, e.g. ``classes`` of a class map

    @property
    def where(self) -> str:
        return f"{self.path}" + (f" (key {self.key!r})" if self.key else "")

    def _check(self, shape: tuple[int, ...], dtype) -> None:
        """Set shape and dtype from the stored array: a 2-D image becomes one slice, singleton axes are dropped."""
        kept = tuple(s for s in shape if s != 1) if len(shape) > 3 else tuple(shape)
        if len(kept) == 2:
            kept = (1, *kept)
        if 0 in shape:
            raise UserError(f"{self.what} {self.where} is empty (shape {tuple(shape)}); it holds no slices")
        if len(kept) != 3:
            raise UserError(
                f"{self.what} {self.where} has shape {tuple(shape)}; expected a greyscale (Z, Y, X) volume or one "
                "(Y, X) image: convert RGB or multi-channel images to greyscale, or give the key of one channel"
            )
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "uif":
            raise UserError(f"{self.what} {self.where} has pixel type {self.dtype}; expected integers or floats")
        self.shape = kept  # type: ignore[assignment]

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def read(self, index: int) -> np.ndarray:
        """Slice ``index`` as a ``(Y, X)`` array."""
        return self.read_box((slice(index, index + 1), slice(None), slice(None)))[0]

    def read_box(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """The ``(z, y, x)`` box (slices with unit step, clipped to the volume) as an array."""
        box = tuple(slice(*s.indices(n)[:2]) for s, n in zip(box, self.shape, strict=True))
        try:
            data = np.asarray(self._read(box))
        except UserError:
            raise
        except Exception as exc:  # every library raises its own types for damaged or truncated data
            bounds = ", ".join(f"{s.start}:{s.stop}" for s in box)
            raise UserError(
                f"{self.what} {self.where} could not be read at [{bounds}] ({type(exc).__name__}: {exc}); "
                "the file looks damaged or truncated: copy it again"
            ) from None
        return data.reshape(tuple(s.stop - s.start for s in box))

    def read_all(self) -> np.ndarray:
        return self.read_box((slice(None),) * 3)

    def _read(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        return {
            "path": str(self.path),
            "key": self.key,
            "format": self.format,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "chunks": list(self.chunks) if self.chunks else None,
            "axes": self.axes,
            "voxel_size": list(self.voxel_size) if self.voxel_size else None,
            "unit": self.unit,
        }


def volume_format(path: Path) -> str:
    """The format of ``path`` from its layout, suffix and first bytes."""
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zgroup").exists() or (path / ".zarray").exists():
            return "zarr"
        if (path / "attributes.json").exists() or path.suffix == ".n5":
            return "n5"
        if path.suffix == ".zarr":
            return "zarr"
        return "folder"
    with open(path, "rb") as handle:
        head = handle.read(8)
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    if path.suffix.lower() in HDF5_SUFFIXES:
        return "hdf5"
    return {".png": "png", ".tif": "tiff", ".tiff": "tiff"}.get(path.suffix.lower(), "unknown")


def open_volume(path: str | Path, key: str | None = None, what: str = "input", hint: str = "check the path") -> Volume:
    """Open ``path`` (and dataset ``key`` in a container) for lazy reads; one clear error for any bad input."""
    from src.data.volume_containers import Hdf5Volume, N5Volume, ZarrVolume
    from src.data.volume_images import ImageFolderVolume, TiffVolume

    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} not found: {path} ({hint})")
    kind = volume_format(path)
    openers = {
        "tiff": TiffVolume,
        "png": ImageFolderVolume,
        "folder": ImageFolderVolume,
        "hdf5": Hdf5Volume,
        "zarr": ZarrVolume,
        "n5": N5Volume,
    }
    if kind not in openers:
        raise UserError(
            f"{what} {path} is in no format read here; give a TIFF, PNG, HDF5 (.h5), Zarr / OME-Zarr or N5 "
            "volume, or a folder of PNG / TIFF slices"
        )
    if key and kind in ("tiff", "png", "folder"):
        raise UserError(f"{what} {path} is a {kind} and holds no datasets; drop the key {key!r}")
    return openers[kind](path, key or None, what, hint)


def read_slices(path: str | Path, key: str | None, ids, what: str, hint: str = "check the path") -> np.ndarray:
    """Slices ``ids`` of a volume as an ``(len(ids), H, W)`` array, reading no other slice."""
    with open_volume(path, key, what, hint) as volume:
        if not len(ids):
            return volume.read_box((slice(0, 0), slice(None), slice(None)))
        return np.stack([volume.read(i) for i in ids])


def read_volume(path: str | Path, key: str | None = None, what: str = "image stack", hint: str = "check the path"):
    """The whole volume as an ``(N, H, W)`` array (for stacks that fit in memory)."""
    with open_volume(path, key, what, hint) as volume:
        return volume.read_all()


class LazyVolume:
    """A volume by path and key, opened on its first read in each process (HDF5 handles do not cross a fork)."""

    def __init__(self, path, key: str | None, what: str, hint: str) -> None:
        self.path, self.key, self.what, self.hint = path, key, what, hint
        self._opened: tuple[int, Volume] | None = None

    @property
    def volume(self) -> Volume:
        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), open_volume(self.path, self.key, self.what, self.hint))
        return self._opened[1]

    def read_box(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        return self.volume.read_box(box)

    def close(self) -> None:
        if self._opened is not None:
            self._opened[1].close()
            self._opened = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_opened": None}


@dataclass(frozen=True)
class Box:
    """A rectangle ``y`` x ``x`` (half-open pixel ranges) of slice ``z``."""

    z: int
    y: tuple[int, int]
    x: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.y[1] - self.y[0], self.x[1] - self.x[0]

    def slices(self) -> tuple[slice, slice, slice]:
        return slice(self.z, self.z + 1), slice(*self.y), slice(*self.x)
