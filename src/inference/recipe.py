"""The inference recipe a checkpoint carries: how training predicted its held-out slices (whole slices or tiles,
test-time augmentation), how it post-processed them, and which output it scored.

``src.train`` saves it with the weights (conf/inference/); ``src.predict`` and ``src.eval`` follow it, and any key
given on their command line overrides it, so the default prediction of a checkpoint is the one it was scored by.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from src.config import PROJECT_ROOT
from src.inference.class_outputs import cell_probability
from src.inference.tile_grid import check_tiling
from src.inference.tiling import TiledPredictor
from src.inference.tta import tta_mean, tta_mean_affinities, tta_transforms
from src.utils.errors import UserError

TILE_KEYS = ("tile_size", "overlap", "stitching", "sigma_scale", "halo")
RECIPE_KEYS = (*TILE_KEYS, "tta", "scored", "postprocess")
SCORED = ("probability", "cells", "contours")


def has_contour_map(postprocess: dict | None) -> bool:
    """Whether the post-processing config's method makes a contour map (and cuts its cells from it)."""
    return bool(postprocess) and hasattr(get_class(postprocess["_target_"]), "contours")


def make_recipe(settings: dict, postprocess: dict | None, prefix: str = "") -> dict:
    """A recipe from plain settings (conf/inference/ keys) and a post-processing config (None for none),
    checked: ``scored`` must name an output the recipe makes."""
    recipe = {**{key: settings[key] for key in RECIPE_KEYS if key != "postprocess"}, "postprocess": postprocess or None}
    recipe["tta"] = list(tta_transforms(recipe["tta"], f"{prefix}tta"))
    if settings.get("held_out"):
        recipe["held_out"] = dict(settings["held_out"])  # the data fold training held out: src.eval's default
    if recipe["scored"] not in SCORED:
        raise UserError(f"{prefix}scored={recipe['scored']} must be one of {', '.join(SCORED)}")
    if recipe["scored"] == "cells" and not recipe["postprocess"]:
        raise UserError(f"{prefix}scored=cells needs a post-processing (postprocess=watershed, for one)")
    if recipe["scored"] == "contours" and not has_contour_map(recipe["postprocess"]):
        raise UserError(
            f"{prefix}scored=contours needs a post-processing with a contour map (postprocess=agglomeration); "
            f"or set {prefix}scored=cells or probability"
        )
    try:
        check_tiling(recipe["overlap"], 1, recipe["stitching"], recipe["tta"], recipe["sigma_scale"], recipe["halo"])
    except ValueError as exc:
        raise UserError(f"{prefix}{exc}") from None
    if not isinstance(recipe["tile_size"], int) or recipe["tile_size"] < 0:
        raise UserError(f"{prefix}tile_size={recipe['tile_size']} must be 0 (whole slices) or a tile side in pixels")
    return recipe


def default_recipe() -> dict:
    """The recipe of a checkpoint that carries none (written before recipes were saved): the training defaults,
    conf/inference/default.yaml with conf/postprocess/watershed.yaml."""
    conf = PROJECT_ROOT / "conf"
    settings = OmegaConf.to_container(OmegaConf.load(conf / "inference" / "default.yaml"))
    postprocess = OmegaConf.to_container(OmegaConf.load(conf / "postprocess" / "watershed.yaml"))
    return make_recipe(settings, postprocess)


def follow_recipe(saved: dict | None, overrides: dict) -> tuple[dict, str]:
    """The checkpoint's recipe (or :func:`default_recipe`) with ``overrides`` (keys given on the command line),
    and where it came from. A scored output the overrides no longer make falls back to one they do."""
    source = "the checkpoint's recipe" if saved else "the default recipe (this checkpoint carries none)"
    settings = {**(saved or default_recipe()), **overrides}
    if overrides:
        source += f", overridden: {', '.join(sorted(overrides))}"
    if "scored" not in overrides:
        if settings["scored"] == "contours" and not has_contour_map(settings["postprocess"]):
            settings["scored"] = "cells"
        if settings["scored"] == "cells" and not settings["postprocess"]:
            settings["scored"] = "probability"
    return make_recipe(settings, settings["postprocess"]), source


def command_line_overrides(cfg: Any) -> dict:
    """The recipe keys a ``src.predict`` / ``src.eval`` command line gave (conf/inference/checkpoint.yaml): the
    non-null ones, and ``postprocess`` where its group was chosen (``postprocess=none``: no post-processing)."""
    from hydra.core.hydra_config import HydraConfig

    overrides = {
        key: OmegaConf.to_container(cfg[key]) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in RECIPE_KEYS
        if key != "postprocess" and cfg.get(key) is not None
    }
    choice = HydraConfig.get().runtime.choices.get("postprocess")
    if choice is not None:
        chosen = choice != "none" and cfg.get("postprocess")
        overrides["postprocess"] = OmegaConf.to_container(cfg.postprocess, resolve=True) if chosen else None
    return overrides


CLASSIFIER_FILE = "edge_classifier.pkl"  # a run's learned edges (postprocess=learned_edges), beside its checkpoints/


def checkpoint_recipe(saved: dict | None, cfg: Any) -> tuple[dict, str]:
    """The recipe ``src.predict`` / ``src.eval`` follow for the checkpoint ``cfg.ckpt_path``, whose saved recipe is
    ``saved``: :func:`follow_recipe` with the command line's keys, and learned edges given the run's classifier
    (:func:`with_run_classifier`)."""
    recipe, source = follow_recipe(saved, command_line_overrides(cfg))
    return {**recipe, "postprocess": with_run_classifier(recipe["postprocess"], cfg.ckpt_path)}, source


def needs_fitting(postprocess: dict | None) -> bool:
    """Whether a recipe's post-processing is learned edges without a classifier file."""
    return bool(postprocess) and postprocess["_target_"].endswith(".LearnedEdges") and not postprocess.get("classifier")


def with_run_classifier(postprocess: dict | None, ckpt_path: str | Path) -> dict | None:
    """Learned edges with no classifier file named get the one of the run ``ckpt_path`` belongs to
    (``RUN/checkpoints/x.ckpt`` -> ``RUN/edge_classifier.pkl``), where it has one fitted on the edges these
    settings make; anything else as it is."""
    if not needs_fitting(postprocess):
        return postprocess
    path = Path(ckpt_path).resolve().parent.parent / CLASSIFIER_FILE
    if not path.exists():
        return postprocess
    from src.postprocess.learned_edges import fitted_for

    return {**postprocess, "classifier": str(path)} if fitted_for(path, postprocess) else postprocess


def describe(recipe: dict) -> str:
    """The recipe in a few words, for the line a task prints before it predicts."""
    if recipe["tile_size"] == 0:
        how = "whole slices"
    else:
        how = f"tiles of {recipe['tile_size']} px (overlap {recipe['overlap']}, {recipe['stitching']} stitching)"
    tta = "no test-time augmentation" if recipe["tta"] == [0] else f"mean of {len(recipe['tta'])} flips/rotations"
    method = recipe["postprocess"]
    if method:
        params = ", ".join(f"{k}={v}" for k, v in method.items() if k != "_target_")
        post = f"post-processing {method['_target_'].rsplit('.', 1)[-1]}({params})"
    else:
        post = "no post-processing"
    return f"{how}, {tta}, {post}; scored output: {recipe['scored']}"


class WholeSlicePredictor:
    """Class probabilities ``(C, H, W)`` (``output="classes"``), the cells' probability ``(H, W)`` (``"interior"``)
    or the class probabilities and then the affinities of an affinity network ``(C + K, H, W)`` (``"all"``)
    of whole slices through the module (mirror-padded to fit the network), the mean over the ``tta``
    flips/rotations: what training scores its held-out slices with when the recipe's tile_size is 0."""

    def __init__(
        self,
        module: torch.nn.Module,
        tta,
        autocast_dtype: torch.dtype | None,
        device: torch.device,
        output: str = "interior",
    ):
        self.module = module.eval().to(device)
        self.tta = tuple(tta)
        self.autocast_dtype = autocast_dtype
        self.device = torch.device(device)
        self.output = output

    def tiles_per_slice(self, height: int, width: int) -> int:
        return 1

    def _tta_mean(self, x: torch.Tensor) -> torch.Tensor:
        offsets = getattr(self.module, "offsets", ())
        if self.output != "all" or not offsets:
            return tta_mean(x, self.tta, lambda view, _: self.module.class_probabilities(view))
        return tta_mean_affinities(x, self.tta, lambda view, _: self.module.probabilities(view), offsets)

    def predict_many(
        self, images: Iterable[np.ndarray], on_tiles: Callable[[int], None] | None = None
    ) -> Iterator[np.ndarray]:
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(self.device)
            with torch.inference_mode(), autocast:
                probs = self._tta_mean(x)[0]
            if on_tiles is not None:
                on_tiles(1)
            if self.output == "interior":
                probs = cell_probability(probs, self.module.boundary_class)
            yield probs.float().cpu().numpy()


class TiledAffinities:
    """Tiled prediction of an affinity network, its test-time augmentation done on the whole slice: each
    flip/rotation of the slice is predicted by tiles, turned back and its affinity channels moved to their offsets
    (:func:`tta_mean_affinities`), so a pair that leaves one tile reads the next, as whole-slice prediction does."""

    def __init__(self, tiled: TiledPredictor, tta, offsets, output: str, boundary: int | None):
        self.tiled, self.tta, self.offsets, self.output, self.boundary = tiled, tuple(tta), offsets, output, boundary

    def tiles_per_slice(self, height: int, width: int) -> int:
        return len(self.tta) * self.tiled.tiles_per_slice(height, width)

    def predict_many(
        self, images: Iterable[np.ndarray], on_tiles: Callable[[int], None] | None = None
    ) -> Iterator[np.ndarray]:
        def predict(view: torch.Tensor, _: int) -> torch.Tensor:
            return torch.from_numpy(self.tiled.predict(view[0, 0].numpy(), on_tiles))[None]

        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
            probs = tta_mean_affinities(x, self.tta, predict, self.offsets)[0]
            classes = probs if self.output == "all" else probs[: self.tiled.num_classes]
            yield (cell_probability(classes, self.boundary) if self.output == "interior" else classes).numpy()


def slice_predictor(
    module: torch.nn.Module,
    recipe: dict,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    output: str = "interior",
    **tiling: Any,
) -> WholeSlicePredictor | TiledPredictor | TiledAffinities:
    """The predictor the recipe names: whole slices (tile_size 0) or :class:`TiledPredictor` with the recipe's
    tiles; ``output``: ``interior`` (the cells' probability) or ``classes`` (every class's); ``tiling`` passes the
    tiled predictor's speed settings (batch size, compile, memory format)."""
    if recipe["tile_size"] == 0:
        return WholeSlicePredictor(module, recipe["tta"], autocast_dtype, device, output)
    offsets = tuple(getattr(module, "offsets", ()))
    channels_last = tiling.get("channels_last", True)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = module.net.eval().to(device=device, memory_format=memory_format)
    try:
        tiled = TiledPredictor(
            net,
            **{key: recipe[key] for key in TILE_KEYS},
            tta=(0,) if offsets else recipe["tta"],
            autocast_dtype=autocast_dtype,
            device=device,
            boundary=module.boundary_class,
            output="all" if offsets else "classes" if output == "all" else output,  # classes alone: all = classes
            affinity_channels=len(offsets),
            **tiling,
        )
        return TiledAffinities(tiled, recipe["tta"], offsets, output, module.boundary_class) if offsets else tiled
    except ValueError as exc:
        raise UserError(str(exc)) from None
