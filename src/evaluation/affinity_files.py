"""The affinities ``src.predict`` writes, read back for scoring: ``<name>_affinities.tif`` (``(N, K, H, W)``, or
``(K, H, W)`` for one image, the offsets in its metadata) or a blockwise output's ``affinities`` group in OME-Zarr
(its array ``0`` is ``(K, Z, Y, X)``, the offsets in the group's attributes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.data.tiff import stack_metadata
from src.utils.errors import UserError

NOT_AFFINITIES = (
    "prediction {where} is not an affinity stack of src.predict (<name>_affinities.tif, an (N, K, H, W) TIFF with its "
    "offsets in the metadata, or a Zarr output's affinities group); for probabilities or cells leave kind=auto"
)


def _zarr_group(path: str | Path, key: str | None):
    """The Zarr group ``key`` names in ``path`` (its array ``0`` named instead gives the group), or None."""
    import zarr

    where = Path(path) / key if key else Path(path)
    if where.name == "0":
        where = where.parent
    try:
        group = zarr.open_group(str(where), mode="r")
    except Exception:  # not a Zarr group: a TIFF, an HDF5 file, an array
        return None
    return group if "offsets" in group.attrs and "0" in group else None


def affinity_offsets(path: str | Path, key: str | None = None) -> list | None:
    """The offsets of the affinities at ``path`` (and ``key``, in a Zarr output), or None when it holds none."""
    if Path(path).is_dir():
        group = _zarr_group(path, key)
        return None if group is None else list(group.attrs["offsets"])
    return stack_metadata(path).get("offsets")


def read_affinities(path: str | Path, key: str | None = None) -> tuple[np.ndarray, list]:
    """The ``(N, K, H, W)`` affinities src.predict wrote at ``path`` (``key``: the group in a Zarr output) and their
    offsets."""
    if Path(path).is_dir():
        group = _zarr_group(path, key)
        if group is None:
            raise UserError(NOT_AFFINITIES.format(where=Path(path) / (key or "")))
        return np.moveaxis(group["0"][...], 0, 1), list(group.attrs["offsets"])
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            stack = tif.asarray()
            metadata = dict(tif.shaped_metadata[0]) if tif.shaped_metadata else {}
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise UserError(f"prediction {path} cannot be read as a TIFF ({exc}); check prediction=") from None
    if stack.ndim == 3 and len(stack) == len(metadata.get("offsets", ())):
        stack = stack[None]  # one slice's (K, H, W): a TIFF keeps no axis of length one
    if "offsets" not in metadata or stack.ndim != 4 or stack.shape[1] != len(metadata["offsets"]):
        raise UserError(NOT_AFFINITIES.format(where=path))
    return stack, metadata["offsets"]
