"""A user's own stacks read and checked before Lightning is imported, so a bad file fails without that wait.

Importing Lightning, building the trainer and the loggers take several seconds before the data module reads its
data. A :class:`~src.data.sources.TiffSource` that training would hold in memory is read here instead, by the same
functions that training uses, and checked as training checks it (present, readable, matching shapes, label values
in the classes, finite pixels); the source keeps the stacks, so training reads nothing twice. Published data
sets (fetched on one process per node) and volumes read lazily are left to the data module.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from src.data.labels import class_map_of
from src.data.normalize import check_finite
from src.data.sources import TiffSource


def reads_lazily(loading: str, image_bytes: int | None, lazy_above_gib: float) -> bool:
    """Whether training reads the volumes box by box: ``data.loading=lazy``, or auto with an image volume over
    ``lazy_above_gib`` (``image_bytes`` None: a source generated in memory)."""
    large = image_bytes is not None and image_bytes > lazy_above_gib * 2**30
    return loading == "lazy" or (loading == "auto" and large)


def checked_source(data: DictConfig) -> Any:
    """The data config's source, instantiated; read and checked now where it is the user's own stacks held in
    memory (``data.loading`` memory, or auto below ``data.lazy_above_gib``)."""
    source = instantiate(data.source)
    loading = data.get("loading", "auto")
    if not isinstance(source, TiffSource) or loading == "lazy":
        return source
    class_map = class_map_of(data)
    source.prepare()
    images, labels = source.volumes()
    size = images.volume.nbytes
    images.close()
    labels.close()
    if reads_lazily(loading, size, data.get("lazy_above_gib", 2.0)):
        return source
    images, labels = source.load()
    class_map.encode(labels, source.label_path)
    check_finite(images)
    return source
