"""Image formats behind :func:`src.data.volume.open_volume`: TIFF (page by page, through tifffile), PNG and folders
of PNG / TIFF slices (Pillow, tifffile; one file per slice in natural name order, ``s2`` before ``s10``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from src.data.volume import IMAGE_SUFFIXES, Volume
from src.utils.errors import UserError


def damaged(volume: Volume, exc: Exception) -> UserError:
    return UserError(
        f"{volume.what} {volume.where} could not be opened ({type(exc).__name__}: {exc}); "
        f"is it a complete {volume.format} file?"
    )


def zyx(values, names=None) -> tuple[float, float, float] | None:
    """Three spatial values (the last three: z, y, x; a 2-D one gets z = 1) as floats, or None."""
    if values is None:
        return None
    values = [float(v) for v in np.ravel(values)]
    if len(values) == 2:
        values = [1.0, *values]
    return tuple(values[-3:]) if len(values) >= 3 else None  # type: ignore[return-value]


class TiffVolume(Volume):
    """A multi-page TIFF (or one image), one page per slice; voxel size from ImageJ's metadata where written."""

    format = "TIFF"

    def __init__(self, path: Path, key: str | None, what: str, hint: str = "check the path and key") -> None:
        import tifffile

        super().__init__(path, key, what, hint)
        try:
            self._tif = tifffile.TiffFile(path)
            series = self._tif.series[0]
            shape, dtype, pages = tuple(series.shape), series.dtype, len(series.pages)
        except Exception as exc:
            raise damaged(self, exc) from None
        try:
            self._check(shape, dtype)
        except UserError:
            self.close()
            raise
        self._by_page = pages == self.shape[0]
        if not self._by_page:
            self._check_complete(series)
        self._block: np.ndarray | None = None
        self.chunks = (1, *self.shape[1:])
        shaped = self._tif.shaped_metadata
        self.metadata = dict(shaped[0]) if shaped else {}
        self._calibration()

    def _check_complete(self, series) -> None:
        """Slices stored in one block must all be in the file (tifffile would give zeros for a truncated tail)."""
        offset, size = series.dataoffset, self.path.stat().st_size
        if offset is not None and offset + self.nbytes > size:
            self.close()
            raise UserError(
                f"{self.what} {self.path} is truncated: it holds {size - offset} of the {self.nbytes} bytes of its "
                f"{self.shape} stack; the file looks damaged or truncated: copy it again"
            )

    def _calibration(self) -> None:
        """This project's own metadata (:class:`src.data.tiff.StackWriter`), else ImageJ's."""
        if self.metadata.get("unit") and self.metadata.get("voxel_size"):
            self.voxel_size, self.unit = zyx(self.metadata["voxel_size"]), self.metadata["unit"]
            return
        page, meta = self._tif.pages[0], self._tif.imagej_metadata or {}
        try:
            x = page.tags["XResolution"].value
            y = page.tags["YResolution"].value
        except KeyError:
            return
        if meta and x[0] and y[0]:
            self.voxel_size = (float(meta.get("spacing", 1.0)), y[1] / y[0], x[1] / x[0])
            self.unit = meta.get("unit")

    def _read(self, box):
        z, y, x = box
        if self._by_page:
            pages = [self._tif.asarray(key=i, series=0).reshape(self.shape[1:])[y, x] for i in range(z.start, z.stop)]
            return np.stack(pages) if pages else np.empty((0, y.stop - y.start, x.stop - x.start), self.dtype)
        if self._block is None:  # one page holds several slices: map it if it can be, else read it once
            import tifffile

            try:
                self._block = tifffile.memmap(self.path).reshape(self.shape)
            except Exception:
                self._block = self._tif.series[0].asarray().reshape(self.shape)
        return self._block[z, y, x]

    def close(self) -> None:
        self._tif.close()


class ImageFolderVolume(Volume):
    """One PNG, or a folder of 2-D PNG / TIFF slices of one shape and type (natural name order)."""

    format = "image folder"

    def __init__(self, path: Path, key: str | None, what: str, hint: str = "check the path and key") -> None:
        super().__init__(path, key, what, hint)
        if path.is_dir():
            self.files = sorted(
                (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                key=lambda p: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)],
            )
            if not self.files:
                raise UserError(
                    f"{what} {path} is a folder with no PNG or TIFF slices (and no Zarr / N5 metadata); "
                    "give a volume file, a Zarr / N5 container, or a folder of 2-D slices"
                )
        else:
            self.format, self.files = "PNG", [path]
        shapes = {p: self._header(p) for p in self.files}
        first = self.files[0]
        for p, (shape, dtype) in shapes.items():
            if len(shape) != 2:
                raise UserError(
                    f"{what} {p} has shape {shape}; every slice must be a greyscale 2-D image (convert RGB first)"
                )
            if (shape, dtype) != shapes[first]:
                raise UserError(
                    f"{what} slice {p.name} is {shape} {dtype} but {first.name} is {shapes[first][0]} "
                    f"{shapes[first][1]}; every slice in {path} must have one shape and pixel type"
                )
        self._check((len(self.files), *shapes[first][0]), shapes[first][1])
        self.chunks = (1, *self.shape[1:])

    def _header(self, path: Path) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and type from the file's header (no pixels read)."""
        try:
            if path.suffix.lower() == ".png":
                from PIL import Image

                with Image.open(path) as image:
                    bands = len(image.getbands())
                    shape = (image.height, image.width) + ((bands,) if bands > 1 else ())
                    dtype = {"I;16": "uint16", "I": "int32", "F": "float32"}.get(image.mode, "uint8")
                    return shape, np.dtype(dtype)
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return tuple(series.shape), np.dtype(series.dtype)
        except Exception as exc:
            raise UserError(
                f"{self.what} slice {path} could not be read ({type(exc).__name__}: {exc}); is it a complete image?"
            ) from None

    def _read(self, box):
        z, y, x = box
        out = np.empty((z.stop - z.start, y.stop - y.start, x.stop - x.start), self.dtype)
        for i, index in enumerate(range(z.start, z.stop)):
            out[i] = self._read_file(self.files[index])[y, x]
        return out

    def _read_file(self, path: Path) -> np.ndarray:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as image:
                return np.asarray(image).astype(self.dtype, copy=False)
        import tifffile

        return tifffile.imread(path)
