"""TIFF stacks written slice by slice (:class:`StackWriter`), their metadata, stacks read whole (:func:`read_stack`).

:class:`StackWriter` appends pages to a temporary file that is renamed to its final name only when the stack is
complete, so a crash never leaves a file that looks finished. Reading slice by slice or box by box, in any format,
is :func:`src.data.volume.open_volume`'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from src.utils.atomic import partial_path


def read_stack(
    path: str | Path, what: str = "image stack", hint: str = "check the path in the data config", key: str | None = None
) -> np.ndarray:
    """Read a volume in any format :func:`src.data.volume.open_volume` reads (a TIFF, HDF5 ``key``, Zarr, ...) as an
    ``(N, H, W)`` array (a 2-D image becomes one slice); for stacks that fit in memory."""
    from src.data.volume import read_volume

    return read_volume(path, key, what, hint)


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
