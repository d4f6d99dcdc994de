"""TIFF stacks written slice by slice (:class:`StackWriter`), their metadata, stacks read whole (:func:`read_stack`).

:class:`StackWriter` appends pages to a temporary file that is renamed to its final name only when the stack is
complete, so a crash never leaves a file that looks finished; a :class:`Calibration` (the input's voxel size)
goes into its resolution tags and metadata. Reading slice by slice or box by box, in any format,
is :func:`src.data.volume.open_volume`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from src.utils.atomic import partial_path
from src.utils.errors import UserError


def read_stack(
    path: str | Path, what: str = "image stack", hint: str = "check the path in the data config", key: str | None = None
) -> np.ndarray:
    """Read a volume in any format :func:`src.data.volume.open_volume` reads (a TIFF, HDF5 ``key``, Zarr, ...) as an
    ``(N, H, W)`` array (a 2-D image becomes one slice); for stacks that fit in memory."""
    from src.data.volume import read_volume

    return read_volume(path, key, what, hint)


# The units of length OME-NGFF names (UDUNITS-2), and the short or other spellings microscopes and users write.
# fmt: off
SPACE_UNITS = frozenset((
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot", "gigameter", "hectometer",
    "inch", "kilometer", "megameter", "meter", "micrometer", "mile", "millimeter", "nanometer", "parsec", "petameter",
    "picometer", "terameter", "yard", "yoctometer", "yottameter", "zeptometer", "zettameter",
))
UNIT_ALIASES = {"nm": "nanometer", "um": "micrometer", "µm": "micrometer", "μm": "micrometer", "\\u00B5m": "micrometer",
                "micron": "micrometer", "mm": "millimeter", "cm": "centimeter", "m": "meter", "pm": "picometer",
                "A": "angstrom", "Å": "angstrom"}
CENTIMETRES_PER_UNIT = {"angstrom": 1e-8, "picometer": 1e-10, "nanometer": 1e-7, "micrometer": 1e-4, "millimeter": 0.1,
                        "centimeter": 1.0, "meter": 100.0, "inch": 2.54}
# fmt: on


def unit_name(unit: str) -> str | None:
    """OME-NGFF's name of a unit of length (``nm`` and ``nanometres`` as ``nanometer``, ``micron`` as
    ``micrometer``), or None when it is none this project knows (ImageJ's ``pixel``)."""
    text = str(unit).strip()
    if text in UNIT_ALIASES:  # case matters: A (angstrom), m
        return UNIT_ALIASES[text]
    text = text.lower().replace("metre", "meter")
    if text.endswith("s") and (text[:-1] in SPACE_UNITS or text[:-1] in UNIT_ALIASES):
        text = text[:-1]
    text = UNIT_ALIASES.get(text, text)
    return text if text in SPACE_UNITS else None


@dataclass(frozen=True)
class Calibration:
    """The physical size of a voxel: ``voxel_size`` as ``(z, y, x)`` in ``unit`` (e.g. nanometer)."""

    voxel_size: tuple[float, float, float]
    unit: str

    @classmethod
    def of(cls, volume) -> Calibration | None:
        """A volume's calibration (:class:`src.data.volume.Volume`), or None when it states no unit."""
        if volume.voxel_size is None or not volume.unit:
            return None
        return cls(tuple(float(v) for v in volume.voxel_size), str(volume.unit))  # type: ignore[arg-type]

    @classmethod
    def chosen(cls, voxel_size, unit: str, volume) -> Calibration | None:
        """The ``voxel_size`` (z, y, x) in ``unit`` a user gave (``voxel_size=``), else the ``volume``'s own."""
        if voxel_size is None:
            return cls.of(volume)
        values = [] if isinstance(voxel_size, (str, int, float)) else list(voxel_size)
        try:
            sizes = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            sizes = ()
        if len(sizes) != 3 or min(sizes) <= 0 or not unit:
            raise UserError(
                f"voxel_size={voxel_size} (voxel_unit={unit}) is not a voxel size: give three positive numbers "
                "(z, y, x) and a unit, e.g. voxel_size=[50,4,4] voxel_unit=nanometer, or voxel_size=null"
            )
        if unit_name(unit) is None:
            raise UserError(
                f"voxel_unit={unit} is not a unit of length: give one OME-NGFF names (nanometer, micrometer, angstrom, "
                "millimeter, ...) or its short form (nm, um)"
            )
        return cls(sizes, unit_name(unit))  # type: ignore[arg-type]

    def tiff_resolution(self) -> dict:
        """TIFF ``XResolution`` / ``YResolution`` in pixels per centimetre (the standard's metric unit), or per
        ``unit`` with no absolute unit when it is not a length this table knows."""
        per_cm = CENTIMETRES_PER_UNIT.get(unit_name(self.unit))
        scale, unit = (per_cm, "CENTIMETER") if per_cm else (1.0, "NONE")
        _, y, x = self.voxel_size
        return {"resolution": (1.0 / (x * scale), 1.0 / (y * scale)), "resolutionunit": unit}


class StackWriter:
    """Appends ``(H, W)`` slices to ``path`` through a hidden temporary file, renamed by :meth:`commit`;
    ``calibration``, when known, goes into every page's resolution tags and the metadata."""

    def __init__(self, path: str | Path, metadata: dict | None = None, calibration: Calibration | None = None) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self._writer = tifffile.TiffWriter(self.tmp, bigtiff=True)
        self.count = 0
        self.metadata = dict(metadata or {})  # written as JSON in the first page's description (e.g. class names)
        self._resolution = calibration.tiff_resolution() if calibration else {}
        if calibration:
            self.metadata.update(voxel_size=list(calibration.voxel_size), unit=calibration.unit)

    def write(self, array: np.ndarray) -> None:
        extra = {"metadata": self.metadata} if self.count == 0 else {}
        array = np.ascontiguousarray(array)
        self._writer.write(array, contiguous=True, photometric="minisblack", **self._resolution, **extra)
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
