"""Reading and writing TIFF stacks one slice at a time, so memory holds one slice, not the stack.

:class:`StackReader` reads pages of a multi-page TIFF (or a memory map where the data lie in one block);
:class:`StackWriter` appends pages to a temporary file that is renamed to its final name only when the
stack is complete, so a crash never leaves a file that looks finished.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from src.utils.errors import UserError


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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer = tifffile.TiffWriter(self.tmp, bigtiff=True)
        self.count = 0

    def write(self, array: np.ndarray) -> None:
        self._writer.write(np.ascontiguousarray(array), contiguous=True, photometric="minisblack")
        self.count += 1

    def commit(self) -> Path:
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.discard()
