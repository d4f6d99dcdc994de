"""Building the objects a task needs from its config: callbacks, loggers, the module, the trainer."""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.inference.recipe import make_recipe
from src.models.module import SegmentationModule
from src.models.outputs import module_net
from src.training.config_checks import check_crop, check_optimizer, check_trainer


def instantiate_group(node: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a group such as ``callbacks`` or ``logger`` (a dict of named configs)."""
    if not node:
        return []
    return [instantiate(value) for value in node.values() if isinstance(value, DictConfig) and "_target_" in value]


def build_module(cfg: DictConfig) -> SegmentationModule:
    from src.data.labels import class_map_of

    check_optimizer(cfg.optimizer, cfg.get("scheduler"))
    classes = class_map_of(cfg.data)
    net, init_from, affinities = module_net(OmegaConf.to_container(cfg.model, resolve=True))
    module = SegmentationModule(
        net=net,
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else None,
        channels_last=cfg.channels_last,
        figure_slices=cfg.figure_slices,
        loss=OmegaConf.to_container(cfg.loss, resolve=True) if cfg.get("loss") else None,
        inference=make_recipe(
            {
                **OmegaConf.to_container(cfg.inference, resolve=True),
                "held_out": {"fold": cfg.data.fold, "num_folds": cfg.data.num_folds},
            },
            OmegaConf.to_container(cfg.postprocess, resolve=True) if cfg.get("postprocess") else None,
            prefix="inference.",
        ),
        classes=classes.names,
        boundary_class=classes.boundary_index,
        affinities=affinities,
    )
    if init_from:
        from src.models.checkpoint import load_weights

        load_weights(module, init_from)
    check_crop(module.net, cfg.data.crop_size, cfg.model.depth)
    if cfg.get("compile"):
        module.net.compile()
    return module


def build_trainer(cfg: DictConfig, **extra: Any) -> L.Trainer:
    check_trainer(cfg)
    return instantiate(cfg.trainer, **extra)
