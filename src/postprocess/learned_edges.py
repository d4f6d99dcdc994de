"""The mutex watershed of fragments with learned edges (``postprocess=learned_edges``).

The recipe's region graph weighs each pair of fragments by the mean of the network's affinities between them.
Here a gradient-boosted tree classifier (scikit-learn) weighs it instead, from statistics of those affinities
(per offset, their quantiles along the shared border, the fragments' sizes), as the multicut pipelines learn
their edge probabilities (Beier et al., Nature Methods 2017). It is fitted on the run's own training slices after
training: each fragment is given to the true cell it overlaps most, and an edge is 1 when both fragments go to one
cell. Its probability then both attracts and repels in the mutex watershed (:func:`signed_cells`), optionally
first in cautious rounds whose grown regions are measured again (:func:`cells_in_rounds`).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from src.postprocess.edge_models import edge_targets, fit_edge_classifier
from src.postprocess.mutex_watershed import _checked, _cluster, drop_small, fragments, network_offsets, offset_edges
from src.postprocess.region_shapes import pair_shapes
from src.utils.atomic import atomic_path
from src.utils.errors import UserError

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
LONG_RANGE = 12  # pixels: the offsets at least this long form the long-range group of repulsions
FORMAT = 1  # the saved file's layout; a file of another is refused
FITTED_ON = ("attractive", "fragments_h", "stride", "shapes")  # the settings that shape an edge's features
UNRECORDED = {"classifiers": 1, "shapes": False}  # what a file from before a setting was recorded was fitted with
RUN_FILE_KEYS = (*FITTED_ON, "classifiers")  # what a run's own file must match to serve a config as it is


def edge_features(
    regions: np.ndarray, affinities: np.ndarray, offsets: np.ndarray, attractive: int, stride: int, shapes: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of ``regions`` (labelled 1..n) linked by some offset's pixel pair, as ``(E, 2)`` node pairs
    (low, high), and its features ``(E, 2K + 3 + len(QUANTILES) + 2)``: per offset the mean affinity of its pairs
    (-1 where it has none) and log(1 + their count); the mean of the attractive pairs, of the short and of the
    long repulsive ones; quantiles of the attractive pairs; log(1 + size) of the smaller and the larger region;
    given ``shapes``, the pair's :func:`~src.postprocess.region_shapes.pair_shapes` too (``COUNT`` more). Repulsive
    pairs are taken one in ``stride`` along each axis."""
    channels = len(offsets)
    strides = [1] * attractive + [stride] * (channels - attractive)
    u, v, k = offset_edges(regions.shape, offsets, strides)
    flat = regions.ravel()
    a, b = flat[u], flat[v]
    between = a != b
    u, k, a, b = u[between], k[between], a[between].astype(np.int64), b[between].astype(np.int64)
    nodes = int(regions.max()) + 1
    pairs, edge = np.unique(np.minimum(a, b) * nodes + np.maximum(a, b), return_inverse=True)
    count = len(pairs)
    weight = affinities.reshape(channels, -1)[k, u]
    cell = edge * channels + k  # (edge, channel) as one index
    per_channel = np.bincount(cell, minlength=count * channels).reshape(count, channels).astype(np.float64)
    totals = np.bincount(cell, weights=weight, minlength=count * channels).reshape(count, channels)
    length = np.linalg.norm(offsets, axis=1)
    repels = np.arange(channels) >= attractive
    groups = [
        _mean(per_channel[:, chosen].sum(1), totals[:, chosen].sum(1))
        for chosen in (~repels, repels & (length < LONG_RANGE), repels & (length >= LONG_RANGE))
    ]
    pulls = k < attractive
    sizes = np.bincount(flat, minlength=nodes).astype(np.float64)
    low, high = pairs // nodes, pairs % nodes
    features = [
        _mean(per_channel, totals),
        np.log1p(per_channel),
        np.stack(groups, 1),
        _quantiles(edge[pulls], weight[pulls], count),
        np.log1p(np.minimum(sizes[low], sizes[high]))[:, None],
        np.log1p(np.maximum(sizes[low], sizes[high]))[:, None],
    ]
    if shapes:
        features.append(pair_shapes(regions, low, high))
    return np.stack([low, high], 1), np.concatenate(features, 1)


def _mean(count: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``total / count``, -1 where the count is 0."""
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)


def _quantiles(edge: np.ndarray, weight: np.ndarray, count: int) -> np.ndarray:
    """The :data:`QUANTILES` of each edge's weights (the lower of two middle values), -1 for an edge with none."""
    order = np.lexsort((weight, edge))
    edge, weight = edge[order], weight[order]
    starts = np.searchsorted(edge, np.arange(count))
    sizes = np.searchsorted(edge, np.arange(count), side="right") - starts
    result = np.full((count, len(QUANTILES)), -1.0)
    has = sizes > 0
    for column, q in enumerate(QUANTILES):
        result[has, column] = weight[starts[has] + np.floor(q * (sizes[has] - 1)).astype(np.int64)]
    return result


def signed_cells(
    regions: np.ndarray, pairs: np.ndarray, joined: np.ndarray, surer_than: float | None = None
) -> np.ndarray:
    """Cells (1, 2, ...) of the mutex watershed on ``regions`` whose every edge both pulls with priority ``joined``
    and repels with ``1 - joined``: edges are taken from the surest, a pull joins unless a mutex forbids it, a
    repulsion adds one. Given ``surer_than``, only pulls with ``joined > surer_than`` may join (a cautious round)."""
    kept = np.ones(len(pairs), bool) if surer_than is None else joined > surer_than
    u = np.concatenate([pairs[kept, 0], pairs[:, 0]])
    v = np.concatenate([pairs[kept, 1], pairs[:, 1]])
    pulls = np.repeat([True, False], [int(kept.sum()), len(pairs)])
    weight = np.concatenate([joined[kept], joined]).astype(np.float64)
    roots = _cluster(int(regions.max()) + 1, u, v, pulls, weight, 0.0)
    _, numbered = np.unique(roots[1:], return_inverse=True)
    return (numbered + 1)[regions - 1]


def cells_in_rounds(
    regions: np.ndarray,
    affinities: np.ndarray,
    offsets: np.ndarray,
    weigh,
    rounds: Sequence[float],
    attractive: int,
    stride: int,
    shapes: bool = False,
) -> np.ndarray:
    """Cells of ``regions`` by :func:`signed_cells`, first in cautious ``rounds`` (only pulls surer than each value
    join), then once with every edge; before each round the grown regions' edges are measured again
    (:func:`edge_features`) and weighed by ``weigh(features)``, whose last column is the probability of one cell."""
    for surer_than in (*rounds, None):
        pairs, features = edge_features(regions, affinities, offsets, attractive, stride, shapes)
        if len(pairs) == 0:
            break
        regions = signed_cells(regions, pairs, weigh(features)[:, -1], surer_than)
    return regions


@dataclass(frozen=True)
class LearnedEdges:
    """``postprocess=learned_edges``: the cells of a predicted affinity map from the graph of its watershed
    fragments, each edge weighed by a classifier fitted on the run's training slices.

    Args:
        attractive: how many leading offsets attract (the nearest neighbours: 2 in 2-D, 3 in 3-D).
        fragments_h: the fragments' h-maxima seeds (:func:`~src.postprocess.mutex_watershed.fragments`), > 0.
        stride: one repulsive pixel pair in ``stride`` along each axis goes into the edges' features.
        shapes: the edges' features include the two regions' shapes (:mod:`~src.postprocess.region_shapes`).
        min_size: cells smaller than this many pixels become border (0), flooded from their neighbours by the scoring.
        rounds: cautious rounds before the last: in each, only edges surer than its value join, then the edges
            between the grown regions are measured and weighed again (the same classifier); null or empty: one round.
        classifier: the fitted classifier's file (``edge_classifier.pkl`` of a run); null in a training config,
            where ``src.train`` fits it after training, and for ``src.predict`` / ``src.eval`` of a run's
            checkpoint, which read the run's own.
        classifiers: how many classifiers are fitted apart and averaged (:mod:`~src.postprocess.edge_models`).
        offsets: filled from the checkpoint's network; empty in the config.
    """

    attractive: int = 2
    fragments_h: float = 0.05
    stride: int = 2
    shapes: bool = False
    min_size: int = 100
    rounds: tuple | None = None
    classifier: str | None = None
    classifiers: int = 1
    offsets: tuple = field(default=())
    model: Any = field(default=None, repr=False, compare=False)

    input = "affinities"

    def __post_init__(self) -> None:
        if min(self.attractive, self.stride, self.classifiers) < 1 or self.min_size < 0 or not 0 < self.fragments_h < 1:
            raise UserError(
                f"postprocess: attractive={self.attractive}, stride={self.stride} and classifiers={self.classifiers} "
                f"must be >= 1, min_size={self.min_size} >= 0, fragments_h={self.fragments_h} in (0, 1)"
            )
        object.__setattr__(self, "rounds", tuple(float(value) for value in self.rounds or ()))
        if any(not 0.5 <= value < 1 for value in self.rounds):
            raise UserError(
                f"postprocess.rounds={list(self.rounds)}: each round's value is how sure an edge must be to join, "
                "in [0.5, 1); e.g. [0.99, 0.95, 0.9, 0.8], or [] for one round"
            )

    def with_offsets(self, offsets: Sequence[Sequence[int]]) -> LearnedEdges:
        offsets = network_offsets(offsets, self.attractive)
        method = replace(self, offsets=offsets)
        if self.classifier is None:
            return method
        return method.with_model(load_classifier(self.classifier, offsets, self.fitted_settings()))

    def fitted_settings(self) -> dict:
        """The settings that shape the edges' features: a classifier decodes only the graph it was fitted on."""
        return {key: getattr(self, key) for key in FITTED_ON}

    def with_model(self, model: Any) -> LearnedEdges:
        return replace(self, model=model)

    def graph(self, affinities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fragments of one affinity map, their linked pairs and the pairs' features."""
        affinities, offsets = _checked(affinities, self.offsets)
        regions = fragments(affinities, offsets, self.attractive, self.fragments_h)
        return regions, *edge_features(regions, affinities, offsets, self.attractive, self.stride, self.shapes)

    def fit(self, affinities: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> Any:
        """A classifier of the edges of ``affinities`` (maps ``(K, *shape)``) against the true cells ``truths``."""
        return fit_edge_classifier(*self.training_edges(affinities, truths), self.classifiers)

    def training_edges(
        self, affinities: Sequence[np.ndarray], truths: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The features of every edge of ``affinities`` both of whose regions overlap a cell of ``truths``, and
        whether the two go to one cell (:func:`~src.postprocess.edge_models.edge_targets`)."""
        features, targets = [], []
        for affinity_map, truth in zip(affinities, truths, strict=True):
            regions, pairs, x = self.graph(affinity_map)
            joined, known = edge_targets(regions, truth, pairs)
            features.append(x[known])
            targets.append(joined[known])
        y = np.concatenate(targets)
        if len(np.unique(y)) < 2:
            raise UserError(
                "postprocess=learned_edges: the training slices' fragments hold no pair of each kind (within one "
                "cell and across two) to learn from; label more cells, or choose postprocess=mutex_watershed"
            )
        return np.concatenate(features), y

    def __call__(self, affinities: np.ndarray) -> np.ndarray:
        if not self.offsets:
            raise UserError("postprocess=learned_edges needs a network trained with model.target=affinities")
        if self.model is None:
            raise UserError(
                "postprocess=learned_edges has no fitted classifier: train with it (src.train writes "
                "RUN/edge_classifier.pkl) or pass postprocess.classifier=RUN/edge_classifier.pkl"
            )
        affinities, offsets = _checked(affinities, self.offsets)
        regions = fragments(affinities, offsets, self.attractive, self.fragments_h)
        weigh = self.model.predict_proba
        settings = self.rounds, self.attractive, self.stride, self.shapes
        cells = cells_in_rounds(regions, affinities, offsets, weigh, *settings)
        return drop_small(cells, self.min_size)


def save_classifier(path: Path, model: Any, method: LearnedEdges) -> Path:
    """Write the fitted ``model`` with the offsets and settings it was fitted for (a pickle, through a temporary
    name)."""
    record = {"format": FORMAT, "model": model, "offsets": [list(o) for o in method.offsets]}
    record.update(method.fitted_settings(), classifiers=method.classifiers)
    with atomic_path(path) as partial, open(partial, "wb") as file:
        pickle.dump(record, file)
    return path


def _read_record(path: str | Path) -> dict:
    """The saved record at ``path`` (a run's own file: a pickle runs code, so read only files you made), with
    :data:`UNRECORDED` for the settings a file from before them lacks."""
    try:
        with open(path, "rb") as file:
            record = pickle.load(file)  # noqa: S301 - the run's own file
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise UserError(
            f"postprocess.classifier={path} cannot be read ({exc}); give the edge_classifier.pkl a training run wrote"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise UserError(f"postprocess.classifier={path} is not an edge classifier this version wrote; retrain")
    return {**UNRECORDED, **record}


def fitted_for(path: str | Path, config: dict) -> bool:
    """Whether the classifier saved at ``path`` was fitted as the ``postprocess`` config asks (:data:`RUN_FILE_KEYS`
    or their defaults); a file that cannot be read counts as fitted, so that reading it says what is wrong."""
    try:
        record = _read_record(path)
    except UserError:
        return True
    defaults = {f.name: f.default for f in fields(LearnedEdges)}
    return all(record.get(key) == config.get(key, defaults[key]) for key in RUN_FILE_KEYS)


def load_classifier(path: str | Path, offsets: Sequence[Sequence[int]], settings: dict | None = None) -> Any:
    """The classifier saved at ``path`` (:func:`_read_record`), refused where it was fitted for other offsets or
    other feature ``settings`` (:meth:`LearnedEdges.fitted_settings`)."""
    record = _read_record(path)
    if [list(o) for o in offsets] != record["offsets"]:
        raise UserError(
            f"postprocess.classifier={path} was fitted for the offsets {record['offsets']}, not this network's "
            f"{[list(o) for o in offsets]}; give the classifier of the run that trained this network"
        )
    fitted = {key: record.get(key) for key in settings or {}}
    if fitted != (settings or {}):
        raise UserError(
            f"postprocess.classifier={path} was fitted on edges made with {_listed(fitted)}, not {_listed(settings)}; "
            f"decode with {_listed(fitted, ' ', 'postprocess.')} or fit one for these (src.eval of the checkpoint)"
        )
    return record["model"]


def _listed(values: dict, sep: str = ", ", prefix: str = "") -> str:
    return sep.join(f"{prefix}{key}={value}" for key, value in values.items())
