"""The OME-Zarr output of blockwise prediction, written block by block, resumable, renamed only when complete.

Layout (OME-NGFF 0.4, Zarr v2, which Fiji, napari and ome-zarr read): the image ``0`` holds every class's
probability ``(c, z, y, x)`` (class names as its channel labels); ``prob/0`` the cells' probability ``(z, y, x)``
where the classes name a boundary; ``labels/classes/0`` the most probable class (uint8 class ids, an OME-Zarr
label image), and for an affinity network ``affinities/0`` each offset's affinity ``(c, z, y, x)`` (the offsets in its
attributes); once every block is written, ``labels/cells/0`` the recipe's cells and, for a post-processing
with one (agglomeration), ``contours/0`` its contour map (src.inference.block_cells). Chunks are the prediction
blocks, so processes never write the same chunk. The output is built under ``.<name>.partial.zarr``; a file per
finished block in its ``.done/`` folder lets ``resume=true`` redo only the others; the last step removes that
folder and renames the output.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from src.data.tiff import unit_name
from src.inference.class_outputs import cell_probability, class_map
from src.utils.atomic import partial_path
from src.utils.errors import UserError

NGFF = "0.4"
CLASS_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def _image_attrs(axes: str, scale: list[float], unit: str | None, name: str) -> dict:
    unit = (unit_name(unit) or unit) if unit else None  # OME-NGFF names units in full (UDUNITS-2)
    kinds = {"c": "channel", "z": "space", "y": "space", "x": "space"}
    described = [{"name": a, "type": kinds[a], **({"unit": unit} if unit and a != "c" else {})} for a in axes]
    level = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
    return {"multiscales": [{"version": NGFF, "name": name, "axes": described, "datasets": [level]}]}


class ZarrOutput:
    """One blockwise prediction's output folder (see the module's docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.done_dir = self.partial / ".done"
        self.cells_work = self.partial / ".cells"  # src.inference.block_cells's passes

    def create(
        self, shape, block_shape, classes, boundary, voxel_size, unit, prob_dtype: str, settings: dict, offsets=()
    ) -> None:
        """Make the empty arrays (chunks = blocks) and their metadata under the partial name."""
        import zarr

        spatial = list(voxel_size or (1.0, 1.0, 1.0))
        root = zarr.open_group(self.partial, mode="w", zarr_format=2)
        dtype = np.uint8 if prob_dtype == "uint8" else np.float32
        root.create_array("0", shape=(len(classes), *shape), chunks=(len(classes), *block_shape), dtype=dtype)
        channels = [{"label": name, "active": True, "window": {"start": 0, "end": 255 if dtype == np.uint8 else 1}}
                    for name in classes]  # fmt: skip
        root.attrs.update(
            {
                **_image_attrs("czyx", [1.0, *spatial], unit, "class probabilities"),
                "omero": {"channels": channels},
                "classes": list(classes),
                "prediction": settings,
            }
        )
        if boundary is not None:
            prob = root.create_group("prob")
            prob.create_array("0", shape=shape, chunks=tuple(block_shape), dtype=dtype)
            prob.attrs.update(_image_attrs("zyx", spatial, unit, "cells' probability"))
        if offsets:
            affinities = root.create_group("affinities")
            affinities.create_array("0", shape=(len(offsets), *shape), chunks=(len(offsets), *block_shape), dtype=dtype)
            affinities.attrs.update(
                {**_image_attrs("czyx", [1.0, *spatial], unit, "affinities"), "offsets": [list(o) for o in offsets]}
            )
        colours = [
            {"label-value": i, "rgba": [*CLASS_COLOURS[i % len(CLASS_COLOURS)], 255]} for i in range(len(classes))
        ]
        _label_image(root, "classes", np.uint8, colours, {"classes": list(classes)})
        self.done_dir.mkdir()

    def create_cells(self, dtype) -> None:
        """Make ``labels/cells/0``, the stitched cells (0 = border), as the class map's sibling label image."""
        import zarr

        _label_image(
            zarr.open_group(self.partial, mode="r+"), "cells", dtype, [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
        )

    def cells_array(self):
        import zarr

        return zarr.open_group(self.partial, mode="r+")["labels/cells/0"]

    def settings(self) -> dict:
        """The settings an existing partial output was started with (to refuse resuming another command)."""
        try:
            return json.loads((self.partial / ".zattrs").read_text())["prediction"]
        except (OSError, ValueError, KeyError):
            raise UserError(
                f"{self.partial} is not a partial prediction output (no settings in it); delete it and start again"
            ) from None

    def check_resumable(self, resume: bool, settings: dict) -> bool:
        """Whether an interrupted run's partial output is here to finish; refused unless ``resume`` and it was started
        with these ``settings``."""
        if not self.partial.exists():
            return False
        if not resume:
            raise UserError(
                f"{self.partial} holds an interrupted prediction; pass resume=true to finish it, or delete it to start "
                "again"
            )
        found = {k: v for k, v in self.settings().items() if k != "slice_statistics"}
        if found != settings:
            changed = sorted(k for k in set(found) | set(settings) if found.get(k) != settings.get(k))
            raise UserError(
                f"{self.partial} was started with other settings ({', '.join(changed)} differ); resume with the same "
                "command, or delete it to start again"
            )
        return True

    def open(self) -> None:
        import zarr

        root = zarr.open_group(self.partial, mode="r+")
        self.arrays = {"classes": root["0"], "class_map": root["labels/classes/0"]}
        for name in ("prob", "affinities"):
            if name in root:
                self.arrays[name] = root[f"{name}/0"]

    def done(self) -> set[int]:
        return {int(p.name) for p in self.done_dir.iterdir() if p.name.isdigit()} if self.done_dir.exists() else set()

    def write_block(self, index: int, z, y, x, probs: np.ndarray, boundary: int | None) -> None:
        """Write one block's class probabilities ``(z, C, y, x)`` float32 (and what follows from them; an affinity
        network's ``(z, C + K, y, x)`` then holds the affinities after the classes), then mark it."""
        box = (slice(*z), slice(*y), slice(*x))
        arrays = self.arrays
        stored = arrays["classes"].dtype
        as_stored = (lambda p: np.round(p * 255).astype(np.uint8)) if stored == np.uint8 else (lambda p: p)
        if "affinities" in arrays:
            arrays["affinities"][(slice(None), *box)] = as_stored(
                probs[:, arrays["classes"].shape[0] :].transpose(1, 0, 2, 3)
            )
        probs = probs[:, : arrays["classes"].shape[0]]
        arrays["classes"][(slice(None), *box)] = as_stored(probs.transpose(1, 0, 2, 3))
        arrays["class_map"][box] = class_map(probs)
        if "prob" in arrays:
            arrays["prob"][box] = as_stored(cell_probability(probs, boundary))
        (self.done_dir / str(index)).touch()

    def finish(self, total: int) -> Path:
        """Check every block is written, then give the output its final name."""
        missing = total - len(self.done())
        if missing:
            raise UserError(f"{missing} of {total} blocks of {self.partial} were not written; rerun with resume=true")
        shutil.rmtree(self.done_dir)
        shutil.rmtree(self.cells_work, ignore_errors=True)
        if self.path.exists():  # overwrite=true was given
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        return self.path


def _spatial(root) -> tuple[list[float], str | None]:
    """The (z, y, x) scale and unit of the output's class image (the unit's full name maps to itself)."""
    scale = root.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"][1:]
    return scale, next((a.get("unit") for a in root.attrs["multiscales"][0]["axes"] if a.get("unit")), None)


def create_contour_map(root) -> None:
    """Make ``contours/0`` (float32, shaped and chunked as ``prob``), the agglomeration's contour map, unless a
    resumed run made it already."""
    if "contours" in root:
        return
    image = root["0"]
    group = root.create_group("contours")
    group.create_array("0", shape=image.shape[1:], chunks=image.chunks[1:], dtype=np.float32)
    group.attrs.update(_image_attrs("zyx", *_spatial(root), "contour map"))


def _label_image(root, name: str, dtype, colours: list[dict], extra: dict | None = None) -> None:
    """An OME-Zarr label image ``labels/<name>/0`` shaped and chunked as the prediction's ``prob`` / class map."""
    image = root["0"]
    shape, chunks = image.shape[1:], image.chunks[1:]
    labels = root.require_group("labels")
    names = list(labels.attrs.get("labels", []))
    labels.attrs["labels"] = names if name in names else [*names, name]
    group = labels.require_group(name)
    group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, overwrite=True)
    group.attrs.update(
        {
            **_image_attrs("zyx", *_spatial(root), name),
            "image-label": {"version": NGFF, "colors": colours, "source": {"image": "../../"}},
            **(extra or {}),
        }
    )
