"""Container formats behind :func:`src.data.volume.open_volume`, each read box by box without loading the volume.

HDF5 through h5py, Zarr v2 / v3 and OME-Zarr through zarr, N5 through tensorstore (zarr 3 dropped its N5 store;
tensorstore is maintained by Google and reads N5 as Java's N5 writes it, with the axis order ``x, y, z``, reversed
here to ``z, y, x``). A dataset is named by its key in the container; a missing one is reported with the keys there.
"""

from __future__ import annotations

import json
from pathlib import Path

from src.data.volume import Volume
from src.data.volume_images import damaged, zyx
from src.utils.errors import UserError


def _dataset_names(group, prefix: str = "") -> list[str]:
    """Names of the arrays in an HDF5 or Zarr group (nested), for a missing-key message."""
    names = []
    for name, item in group.members() if hasattr(group, "members") else group.items():
        full = f"{prefix}{name}"
        if hasattr(item, "shape") and hasattr(item, "dtype"):
            names.append(full)
        elif hasattr(item, "items"):
            names += _dataset_names(item, full + "/")
    return names


def _missing_key(volume: Volume, names: list[str]) -> UserError:
    held = f"it holds {', '.join(names[:8])}" if names else "it holds no datasets"
    if volume.key:
        return UserError(f"{volume.what} {volume.path} has no dataset {volume.key!r} ({held}); {volume.hint}")
    return UserError(f"{volume.what} {volume.path} is a container: name its dataset ({held}); {volume.hint}")


class Hdf5Volume(Volume):
    """A dataset in an HDF5 file; voxel size from ``resolution`` (CREMI) or ``element_size_um`` (ilastik, Fiji)."""

    format = "HDF5"

    def __init__(self, path: Path, key: str | None, what: str, hint: str = "check the path and key") -> None:
        import h5py

        super().__init__(path, key, what, hint)
        try:
            self._file = h5py.File(path, "r")
        except Exception as exc:
            raise damaged(self, exc) from None
        try:
            names = _dataset_names(self._file)
            if not key or key not in self._file or not isinstance(self._file[key], h5py.Dataset):
                raise _missing_key(self, names)
            self._data = self._file[key]
            self._check(self._data.shape, self._data.dtype)
        except UserError:
            self.close()
            raise
        self.chunks = _zyx_int(self._data.chunks)
        attrs = self._data.attrs
        if "resolution" in attrs:
            self.voxel_size, self.unit = zyx(attrs["resolution"]), "nanometer"
        elif "element_size_um" in attrs:
            self.voxel_size, self.unit = zyx(attrs["element_size_um"]), "micrometer"

    def _read(self, box):
        return self._data[_storage_box(box, self._data.shape)]

    def close(self) -> None:
        self._file.close()


def _zyx_int(chunks) -> tuple[int, int, int] | None:
    if chunks is None:
        return None
    chunks = [int(c) for c in chunks]
    return tuple(([1] + chunks)[-3:])  # type: ignore[return-value]


def _storage_box(box, stored_shape) -> tuple:
    """The ``(z, y, x)`` box as an index of the stored array: a 2-D image has no z; extra axes (e.g. OME-Zarr's
    ``t, c`` of size 1) are indexed at 0."""
    if len(stored_shape) <= 3:
        return tuple(box[-len(stored_shape) :])
    kept = [i for i, size in enumerate(stored_shape) if size != 1]
    index: list = [0] * len(stored_shape)
    for axis, part in zip(kept, box if len(kept) == 3 else box[1:], strict=True):
        index[axis] = part
    return tuple(index)


def _ome_multiscales(attrs) -> list | None:
    attrs = dict(attrs)
    return attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")


class ZarrVolume(Volume):
    """An array in a Zarr v2 / v3 store; an OME-Zarr image (NGFF 0.4 / 0.5) reads its first level and scale."""

    format = "Zarr"

    def __init__(self, path: Path, key: str | None, what: str, hint: str = "check the path and key") -> None:
        import zarr

        super().__init__(path, key, what, hint)
        try:
            node = zarr.open(str(path), mode="r")
            if key:
                node = node.get(key) if hasattr(node, "get") else None
        except Exception as exc:
            raise damaged(self, exc) from None
        if node is not None and not hasattr(node, "shape"):  # a group: an OME-Zarr image, or a key is needed
            node = self._ome_level(node)
        if node is None:
            raise _missing_key(self, _dataset_names(zarr.open(str(path), mode="r")))
        self._data = node
        self.metadata = {**self.metadata, **dict(node.attrs)}  # an OME-Zarr image's group attributes, then its array's
        self._check(node.shape, node.dtype)
        self.chunks = _zyx_int(node.chunks)

    def _ome_level(self, group):
        multiscales = _ome_multiscales(group.attrs)
        if not multiscales:
            return None
        self.metadata = dict(group.attrs)
        image = multiscales[0]
        level = image["datasets"][0]
        axes = [a["name"] if isinstance(a, dict) else a for a in image.get("axes", [])]
        units = [a.get("unit") for a in image.get("axes", []) if isinstance(a, dict) and a.get("type") == "space"]
        scale = next((t["scale"] for t in level.get("coordinateTransformations", []) if t["type"] == "scale"), None)
        if scale and axes:
            spatial = [s for s, a in zip(scale, axes, strict=False) if a in ("z", "y", "x")]
            self.voxel_size, self.unit = zyx(spatial), (units[-1] if units else None)
        self.key = f"{self.key}/{level['path']}" if self.key else level["path"]
        return group[level["path"]]

    def _read(self, box):
        return self._data[_storage_box(box, self._data.shape)]


class N5Volume(Volume):
    """A dataset in an N5 container, through tensorstore; N5's ``x, y, z`` axes become ``z, y, x``."""

    format = "N5"

    def __init__(self, path: Path, key: str | None, what: str, hint: str = "check the path and key") -> None:
        import tensorstore as ts

        super().__init__(path, key, what, hint)
        where = path / key if key else path
        if not (where / "attributes.json").exists() or "dimensions" not in _json(where / "attributes.json"):
            raise _missing_key(self, _n5_datasets(path))
        try:
            store = ts.open({"driver": "n5", "kvstore": {"driver": "file", "path": str(where)}}, read=True).result()
        except Exception as exc:
            raise damaged(self, exc) from None
        self._data = store.T  # N5 lists dimensions fastest first (x, y, z)
        self._check(tuple(self._data.shape), self._data.dtype.numpy_dtype)
        self.chunks = _zyx_int(tuple(store.chunk_layout.read_chunk.shape)[::-1])
        attrs = _json(where / "attributes.json")
        pixel = attrs.get("pixelResolution")
        resolution = pixel.get("dimensions") if isinstance(pixel, dict) else attrs.get("resolution")
        if resolution is not None:
            self.voxel_size = zyx(list(resolution)[::-1])
            self.unit = pixel.get("unit") if isinstance(pixel, dict) else None

    def _read(self, box):
        return self._data[_storage_box(box, tuple(self._data.shape))].read().result()


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _n5_datasets(root: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob("attributes.json") if "dimensions" in _json(p))
