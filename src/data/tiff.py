"""TIFF stacks: read whole (:func:`read_stack`), read slice by slice (:class:`StackReader`), written slice by slice.

:class:`StackReader` reads pages of a multi-page TIFF (or a memory map where the data lie in one block), so
memory holds one slice, not the stack; :class:`StackWriter` appends pages to a temporary file that is renamed
to its final name only when the stack is complete, so a crash never leaves a file that looks finished.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from src.utils.atomic import partial_path
from src.utils.errors import UserError


def read_stack(
    path: str | Path, what: str = "image stack", hint: str = "check the path in the data config"
) -> np.ndarray:
    """Read a TIFF as an ``(N, H, W)`` array (a 2-D image becomes one slice)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} not found: {path} ({hint})")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give the path of a TIFF file")
    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises several types for damaged or foreign files
        raise UserError(f"{what} {path} could not be read as a TIFF ({exc}); is it a complete .tif file?") from exc
    if array.size == 0:
        raise UserError(f"{what} {path} is empty (shape {array.shape}); it holds no slices")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise UserError(
            f"{what} {path} has shape {array.shape}; expected a greyscale (N, H, W) stack or one (H, W) "
            "image: RGB or multi-channel images are not supported, convert them to greyscale first"
        )
    if np.iscomplexobj(array) or array.dtype == bool:
        raise UserError(f"{what} {path} has pixel type {array.dtype}; expected 8/16-bit integers or floats")
    return array


class StackReader:
    """Slices of a 2-D image or an ``(N, H, W)`` TIFF stack, read on demand."""

    def __init__(self, path: str | Path, what: str = "input") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{what} not found: {self.path} (give input=<stack>.tif)")
        try:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]
        except Exception as exc:
            raise UserError(f"{what} {self.path} could not be read as a TIFF ({exc}); is it a complete .tif?") from exc
        shape = tuple(series.shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or 0 in shape:
            self.close()
            raise UserError(
                f"{what} {self.path} has shape {tuple(series.shape)}; expected a greyscale (N, H, W) stack or an "
                "(H, W) image: convert RGB or multi-channel images to greyscale first"
            )
        self.dtype = np.dtype(series.dtype)
        if self.dtype.kind not in "uif":
            self.close()
            raise UserError(f"{what} {self.path} has pixel type {self.dtype}; expected 8/16-bit integers or floats")
        self.shape = shape
        self._by_page = len(series.pages) == shape[0]
        self._block: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, index: int) -> np.ndarray:
        if self._by_page:
            return np.asarray(self._tif.asarray(key=index, series=0)).reshape(self.shape[1:])
        if self._block is None:  # one page holds several slices: map it if it can be, else read it once
            try:
                self._block = tifffile.memmap(self.path).reshape(self.shape)
            except Exception:
                self._block = self._tif.series[0].asarray().reshape(self.shape)
        return np.asarray(self._block[index])

    def close(self) -> None:
        self._tif.close()

    def __enter__(self) -> StackReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StackWriter:
    """Appends ``(H, W)`` slices to ``path`` through a hidden temporary file, renamed by :meth:`commit`."""

    def __init__(self, path: str | Path, metadata: dict | None = None) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self._writer = tifffile.TiffWriter(self.tmp, bigtiff=True)
        self.count = 0
        self.metadata = dict(metadata or {})  # written as JSON in the first page's description (e.g. class names)

    def write(self, array: np.ndarray) -> None:
        extra = {"metadata": self.metadata} if self.count == 0 else {}
        self._writer.write(np.ascontiguousarray(array), contiguous=True, photometric="minisblack", **extra)
        self.count += 1

    def commit(self) -> Path:
        self._writer.close()
        self.tmp.replace(self.path)
        return self.path

    def discard(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.discard()


def stack_metadata(path: str | Path) -> dict:
    """The JSON metadata a :class:`StackWriter` wrote (e.g. ``classes`` of a class map); ``{}`` if none."""
    try:
        with tifffile.TiffFile(path) as tif:
            found = tif.shaped_metadata
    except Exception:
        return {}
    return dict(found[0]) if found else {}
