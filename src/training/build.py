"""Building the objects a task needs from its config: callbacks, loggers, the module, the trainer."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.config.hardware import check_precision, runs_on_cpu
from src.inference.recipe import make_recipe
from src.models.module import SegmentationModule
from src.utils.errors import UserError


def instantiate_group(node: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a group such as ``callbacks`` or ``logger`` (a dict of named configs)."""
    if not node:
        return []
    return [instantiate(value) for value in node.values() if isinstance(value, DictConfig) and "_target_" in value]


def build_module(cfg: DictConfig) -> SegmentationModule:
    from src.data.labels import class_map_of

    lr = cfg.optimizer.get("lr")
    if lr is not None and not lr > 0:
        raise UserError(f"optimizer.lr={lr} must be positive (e.g. optimizer.lr=0.001)")
    classes = class_map_of(cfg.data)
    net = OmegaConf.to_container(cfg.model, resolve=True)
    init_from = net.pop("init_from", None)  # where training starts, not part of the network's shape
    affinities = affinity_settings(net)
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
    crop = cfg.data.crop_size
    try:
        module.net.output_size(crop)
    except ValueError as exc:
        raise UserError(f"data.crop_size={crop} does not fit model.depth={cfg.model.depth}: {exc}") from None
    if cfg.get("compile"):
        module.net.compile()
    return module


def affinity_settings(net: dict) -> dict | None:
    """Take ``target``, ``offsets``, ``affinity_loss`` and ``affinity_weight`` out of the model config; for
    ``target=affinities`` add one output channel per offset and return the module's ``affinities`` argument."""
    from src.models.affinities import check_offsets

    target = net.pop("target", "classes")
    offsets, loss, weight = (net.pop(key, None) for key in ("offsets", "affinity_loss", "affinity_weight"))
    if target not in ("classes", "affinities"):
        raise UserError(f"model.target={target} must be classes or affinities")
    if target == "classes":
        return None
    offsets = [list(offset) for offset in check_offsets(offsets or ())]
    net["num_classes"] += len(offsets)
    net["affinity_channels"] = len(offsets)
    return {"offsets": offsets, "loss": loss or "dice", "weight": 1.0 if weight is None else float(weight)}


def build_trainer(cfg: DictConfig, **extra: Any) -> L.Trainer:
    accelerator = cfg.trainer.get("accelerator")
    on_cpu = runs_on_cpu(accelerator)
    check_precision(cfg.trainer.get("precision"), on_cpu)
    _check_devices(cfg.trainer.get("devices"), accelerator)
    if cfg.trainer.get("sync_batchnorm") and cfg.model.get("norm") == "batch" and on_cpu:
        raise UserError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm is CUDA-only); on CPUs set "
            "trainer.sync_batchnorm=false, or model.norm=group or instance, which need no synchronisation"
        )
    return instantiate(cfg.trainer, **extra)


def _check_devices(devices: Any, accelerator: str | None) -> None:
    """A device count larger than the machine has fails here, before any process is started."""
    if not isinstance(devices, int) or devices < 1:
        return  # "auto", -1, or a list of device ids: Lightning checks those
    if runs_on_cpu(accelerator):
        cores = os.cpu_count() or 1
        if devices > cores:
            raise UserError(
                f"trainer.devices={devices} CPU processes but this machine has {cores} cores; "
                f"use trainer.devices={cores} or fewer"
            )
    elif devices > torch.cuda.device_count():
        raise UserError(
            f"trainer.devices={devices} but {torch.cuda.device_count()} GPUs are visible; lower trainer.devices"
        )
