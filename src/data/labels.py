"""Label stacks as the networks' targets: raw label values mapped to class ids by the data config's ``classes``.

A data config names its classes in order and the raw values each one covers, e.g. ISBI 2012's
``{membrane: [0], interior: [255]}``; class ids are their positions (membrane 0, interior 1). ``ignore`` is a raw
value that marks unlabelled pixels (sparse annotation): they become :data:`IGNORE` and count in no loss and no
metric. With ``labels: instances`` the raw values are instance ids (one per cell, as in CREMI or SNEMI3D), and the
boundary class is drawn ``boundary_width`` pixels wide along every border between two ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from src.utils.errors import UserError

log = logging.getLogger(__name__)

IGNORE = 255  # the class id of an unlabelled pixel (torch's ignore_index in the losses)
LABEL_KINDS = ("classes", "instances")
# A boundary class over half the labelled pixels is the sign of inverted labels: EM membranes cover 10-30%.
INVERTED_SHARE = 0.5


class ClassMap:
    """The data config's class definition: names, raw values, the ignore value and the boundary class.

    Args:
        classes: ordered ``{name: [raw values]}``; with ``labels: instances`` exactly two classes, the boundary
            class and the cells' interior, whose values are not used.
        ignore: a raw value of unlabelled pixels, or None.
        boundary_class: the class whose complement makes the cells scored by V_rand / V_info (membranes), or None.
        labels: ``classes`` (raw values are class values) or ``instances`` (raw values are instance ids).
        boundary_width: with ``labels: instances``, the width in pixels of the boundary drawn between two ids.
    """

    def __init__(
        self,
        classes: Mapping[str, Sequence[int]],
        ignore: int | None = None,
        boundary_class: str | None = None,
        labels: str = "classes",
        boundary_width: int = 2,
    ) -> None:
        if not isinstance(classes, Mapping) or len(classes) < 2:
            raise UserError(
                f"data.classes={dict(classes) if isinstance(classes, Mapping) else classes} must name at least two "
                "classes and their label values, e.g. {membrane: [0], interior: [255]}"
            )
        if len(classes) >= IGNORE:
            raise UserError(f"data.classes names {len(classes)} classes; at most {IGNORE - 1} are supported")
        self.names = [str(name) for name in classes]
        self.values = {
            str(name): [int(v) for v in (vals if isinstance(vals, Sequence) else [vals])]
            for name, vals in classes.items()
        }
        if labels not in LABEL_KINDS:
            raise UserError(f"data.labels={labels} must be one of {', '.join(LABEL_KINDS)}")
        self.kind = labels
        self.ignore = None if ignore is None else int(ignore)
        if boundary_class is not None and boundary_class not in self.names:
            raise UserError(
                f"data.boundary_class={boundary_class} is not one of data.classes ({', '.join(self.names)}); "
                "name one of them or set data.boundary_class=null"
            )
        self.boundary_class = boundary_class
        self.boundary_width = int(boundary_width)
        if labels == "instances":
            if len(self.names) != 2 or boundary_class is None:
                raise UserError(
                    "data.labels=instances makes two classes, boundary and interior: set data.classes to two names "
                    "(e.g. {boundary: [], interior: []}) and data.boundary_class to the first"
                )
            if self.boundary_width < 1:
                raise UserError(f"data.boundary_width={boundary_width} must be at least 1 pixel")
            return
        owner: dict[int, str] = {}
        for name, vals in self.values.items():
            if not vals:
                raise UserError(f"data.classes.{name} lists no label values; give it at least one, e.g. [255]")
            for value in vals:
                if value in owner:
                    raise UserError(f"label value {value} is in both data.classes.{owner[value]} and .{name}")
                owner[value] = name
        if self.ignore is not None and self.ignore in owner:
            raise UserError(
                f"data.ignore={self.ignore} is also a value of data.classes.{owner[self.ignore]}; an unlabelled value "
                "cannot be a class: remove it from the class or choose another data.ignore"
            )
        self.owner = owner

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def boundary_index(self) -> int | None:
        return None if self.boundary_class is None else self.names.index(self.boundary_class)

    def encode(self, raw: np.ndarray, path: str | Path = "label stack", warn: bool = True) -> np.ndarray:
        """Class ids (uint8; :data:`IGNORE` where unlabelled) of a raw label stack; an unknown value is an error.
        ``warn``: warn when the labels look inverted (off for crops, whose share of classes says little)."""
        if self.kind == "instances":
            return self._encode_instances(raw)
        values = np.unique(raw)
        known = set(self.owner) | ({self.ignore} if self.ignore is not None else set())
        unknown = [v for v in values.tolist() if v not in known]
        if unknown:
            shown = ", ".join(str(v) for v in unknown[:6]) + (" ..." if len(unknown) > 6 else "")
            grey = (
                "; many values: labels saved lossily (JPEG, resampling) must be thresholded first"
                if len(unknown) > 3
                else ""
            )
            raise UserError(
                f"label value {shown} in {path} is in no class of data.classes ({self._listing()}); add it to a "
                f"class, or set data.ignore to it if it marks unlabelled pixels{grey}"
            )
        lut = np.full(int(values.max()) + 1 if values.size else 1, IGNORE, dtype=np.uint8)
        for index, name in enumerate(self.names):
            for value in self.values[name]:
                if 0 <= value < len(lut):
                    lut[value] = index
        encoded = lut[raw.astype(np.int64)] if raw.size else raw.astype(np.uint8)
        if warn:
            self.warn_if_inverted(encoded, path)
        return encoded

    def _encode_instances(self, raw: np.ndarray) -> np.ndarray:
        boundary, interior = self.names.index(self.boundary_class), 1 - self.names.index(self.boundary_class)
        encoded = np.empty(raw.shape, dtype=np.uint8)
        for index, ids in enumerate(raw.reshape(-1, *raw.shape[-2:])):
            encoded.reshape(-1, *raw.shape[-2:])[index] = np.where(
                instance_boundaries(ids, self.boundary_width), boundary, interior
            )
        if self.ignore is not None:
            encoded[raw == self.ignore] = IGNORE
        return encoded

    def warn_if_inverted(self, encoded: np.ndarray, path: str | Path) -> None:
        index = self.boundary_index
        if index is None:
            return
        labelled = np.count_nonzero(encoded != IGNORE)
        share = np.count_nonzero(encoded == index) / max(1, labelled)
        if share > INVERTED_SHARE:
            flipped = self._flip_hint()
            log.warning(
                "labels in %s look inverted: %.0f%% of the labelled pixels are read as %s (values %s), where EM "
                "membranes cover 10-30%%; if so, set %s",
                path,
                100 * share,
                self.boundary_class,
                self.values[self.boundary_class],
                flipped,
            )

    def _flip_hint(self) -> str:
        if self.num_classes == 2:
            a, b = self.names
            return f"'data.classes={{{a}:{self.values[b]},{b}:{self.values[a]}}}'".replace(" ", "")
        return f"data.classes.{self.boundary_class} to the values that mark membranes"

    def _listing(self) -> str:
        return ", ".join(f"{name}: {self.values[name]}" for name in self.names)

    def decode(self, classes: np.ndarray) -> np.ndarray:
        """Raw label values of a class-id stack: each class's first value (the ignore value where unlabelled)."""
        lut = np.zeros(256, dtype=np.int64)
        for index, name in enumerate(self.names):
            lut[index] = self.values[name][0] if self.values[name] else index
        lut[IGNORE] = self.ignore if self.ignore is not None else 0
        out = lut[classes]
        return out.astype(np.uint8) if out.max(initial=0) < 256 else out.astype(np.uint16)

    def cell_mask(self, classes: np.ndarray) -> np.ndarray:
        """The binary interior mask V_rand and V_info score (1 = not boundary and labelled)."""
        return ((classes != self.boundary_index) & (classes != IGNORE)).astype(np.uint8)


def instance_boundaries(ids: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` pixels of a border between two instance ids (id 0, no instance, is all boundary).

    A pixel is on a border where a 4-neighbour holds another id; the border is then grown by ``width - 1`` pixels
    on the side of each instance, so two touching cells are split by a band ``2 * width`` pixels wide.
    """
    ids = np.asarray(ids)
    border = ids == 0
    vertical = ids[1:, :] != ids[:-1, :]
    horizontal = ids[:, 1:] != ids[:, :-1]
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    if width > 1:
        border = ndimage.binary_dilation(border, iterations=width - 1)
    return border


def class_map_of(data: Mapping) -> ClassMap:
    """The :class:`ClassMap` of a data config (the keys ``classes``, ``ignore``, ``boundary_class``, ``labels``,
    ``boundary_width``)."""
    return ClassMap(
        classes=data["classes"],
        ignore=data.get("ignore"),
        boundary_class=data.get("boundary_class"),
        labels=data.get("labels", "classes"),
        boundary_width=data.get("boundary_width", 2),
    )


def binary_labels(stack: np.ndarray, path: str | Path = "label stack") -> np.ndarray:
    """Interior mask (1 = cell interior, 0 = membrane) of labels holding two values {0, 1} or {0, 255}: the binary
    convention ``src.score`` takes when no data config names the classes."""
    values = np.unique(stack)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise UserError(
            f"labels in {path} are not binary (values: {shown}); expected 0 = membrane and 255 (or 1) = cell "
            "interior, or name the data set's classes with data=<its config>"
        )
    return (stack > 0).astype(np.uint8)
