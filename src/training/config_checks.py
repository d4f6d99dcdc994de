"""A training config's optimizer, trainer and network settings checked before Lightning is imported.

Importing torch, Lightning and our modules takes seconds; :func:`check_training_config` needs only the config
(torch only to count GPUs, and to ask for one where the wheel is not CPU-only), so a bad setting fails before that
wait. :func:`check_training_parts` then makes the optimizer, schedule, loss, augmentation and post-processing once
(torch and albumentations, still no Lightning). :mod:`src.training.build` checks the optimizer and trainer again
for users who build in Python.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.config.hardware import check_precision, runs_on_cpu
from src.models.checkpoint import check_resumable, read_init_from, resume_path
from src.models.outputs import affinity_settings, module_net
from src.models.unet_shape import UNetSizes, check_members, check_unet_settings
from src.utils.errors import UserError


def check_lr(optimizer: DictConfig) -> None:
    """The step size, and a momentum below 1 (torch takes one of 1 or more, with which the steps grow without end)."""
    lr = optimizer.get("lr")
    if lr is not None and not lr > 0:
        raise UserError(f"optimizer.lr={lr} must be positive (e.g. optimizer.lr=0.001)")
    momentum = optimizer.get("momentum")
    if momentum is not None and not 0 <= momentum < 1:
        raise UserError(f"optimizer.momentum={momentum} must be from 0 to below 1 (e.g. optimizer.momentum=0.99)")


def check_optimizer(optimizer: DictConfig, scheduler: DictConfig | None) -> None:
    """The optimizer and schedule made once on a stand-in parameter, so that a setting they refuse (a negative
    weight decay, betas outside [0, 1), a schedule's floor below 0) ends in one line, not in a traceback when
    training starts."""
    import torch

    check_lr(optimizer)
    made = _made("optimizer", optimizer, params=[torch.nn.Parameter(torch.zeros(1))])
    if scheduler:
        _made("scheduler", scheduler, optimizer=made, progress=lambda step: 0.0)


def _made(group: str, node: DictConfig, **arguments: Any) -> Any:
    """``node`` instantiated (called with ``arguments`` when it is a partial); what it refuses, in one line."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        made = instantiate(node)
        return made(**arguments) if arguments else made
    except (ValueError, TypeError, InstantiationException) as exc:
        cause = exc.__cause__ if isinstance(exc, InstantiationException) else exc  # what the target refused
        if not isinstance(cause, ValueError | TypeError):
            raise  # a target that cannot be found, or a refusal that already says what to do
        name = node.get("_target_", group)
        raise UserError(f"{group} ({name}): {cause}; fix it in conf/{group}/ or override it") from None


def check_training_parts(cfg: DictConfig) -> None:
    """The optimizer, schedule, loss, augmentation and post-processing made once, before the data module and
    Lightning: what they refuse (with torch and albumentations, after the settings and stacks are checked) ends in one
    line, not after training (the post-processing is the checkpoint's recipe, decoded after the last step)."""
    from src.data.augment import checked_augmentation
    from src.postprocess.instances import build_postprocess

    check_optimizer(cfg.optimizer, cfg.get("scheduler"))
    if cfg.get("loss"):
        _made("loss", cfg.loss)
    augmentation = cfg.data.get("augmentation")
    checked_augmentation(
        OmegaConf.to_container(augmentation, resolve=True) if augmentation else None, cfg.data.crop_size
    )
    if cfg.get("postprocess"):  # e.g. a decoder of affinities asked of a network that predicts classes only
        affinities = affinity_settings(OmegaConf.to_container(cfg.model, resolve=True))
        build_postprocess(
            OmegaConf.to_container(cfg.postprocess, resolve=True), affinities["offsets"] if affinities else ()
        )


def check_trainer(cfg: DictConfig) -> None:
    """Refuse a precision, device count or SyncBatchNorm this machine cannot run, and steps that cannot run."""
    accelerator = cfg.trainer.get("accelerator")
    on_cpu = runs_on_cpu(accelerator)
    check_precision(cfg.trainer.get("precision"), on_cpu)
    _check_devices(cfg.trainer.get("devices"), accelerator)
    if cfg.trainer.get("accumulate_grad_batches", 1) < 1:
        raise UserError(f"trainer.accumulate_grad_batches={cfg.trainer.accumulate_grad_batches} must be at least 1")
    interval, every = cfg.trainer.get("val_check_interval"), cfg.trainer.get("check_val_every_n_epoch")
    if interval is not None and not interval > 0:  # Lightning takes 0 for either, then divides by it mid-epoch
        raise UserError(
            f"trainer.val_check_interval={interval} must be a fraction of an epoch above 0 (up to 1.0) or a number "
            "of batches (1 or more)"
        )
    if every is not None and every < 1:
        raise UserError(f"trainer.check_val_every_n_epoch={every} must be at least 1 (validate every n-th epoch)")
    clip = cfg.trainer.get("gradient_clip_val")
    if clip is not None and not clip >= 0:  # torch scales the gradients by max_norm / norm: below 0 they turn round
        raise UserError(f"trainer.gradient_clip_val={clip} must be 0 (no clipping) or more")
    if cfg.trainer.get("sync_batchnorm") and cfg.model.get("norm") == "batch" and on_cpu:
        raise UserError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm is CUDA-only); on CPUs set "
            "trainer.sync_batchnorm=false, or model.norm=group or instance, which need no synchronisation"
        )


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
    else:
        import torch

        if devices > torch.cuda.device_count():
            raise UserError(
                f"trainer.devices={devices} but {torch.cuda.device_count()} GPUs are visible; lower trainer.devices"
            )


def check_crop(net: Any, crop: int, depth: int) -> None:
    """The training crop must pass the network (its size arithmetic names the nearest sizes that do)."""
    try:
        net.output_size(crop)
    except ValueError as exc:
        raise UserError(f"data.crop_size={crop} does not fit model.depth={depth}: {exc}") from None


def check_network(model: DictConfig, crop: int) -> None:
    """The U-Net's settings and the training crop through its size arithmetic, without building the network."""
    affinity_settings(OmegaConf.to_container(model, resolve=True))  # target and offsets
    try:
        check_members(model.members)
        check_unet_settings(
            depth=model.depth,
            base_channels=model.base_channels,
            padding=model.padding,
            norm=model.norm,
            dropout=model.dropout,
            up_mode=model.up_mode,
            contrast_sigma=model.contrast_sigma,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_crop(UNetSizes(model.depth, model.padding), crop, model.depth)


def check_optimized_metric(cfg: DictConfig) -> None:
    """A validation metric the best checkpoint is chosen on must be one validation logs: Lightning finds a misspelt
    one only at the first validation, in a traceback. Other stages' (train/loss) are Lightning's to check."""
    from src.data.labels import class_map_of
    from src.metrics.classes import score_keys
    from src.metrics.isbi import STACK_KEYS

    metric = str(cfg.get("optimized_metric") or "")
    if not metric.startswith("val/"):
        return
    class_map = class_map_of(cfg.data)
    logged = ["val/loss", *score_keys(class_map.names, "val/")]
    logged += [f"val/{key}" for key in STACK_KEYS] if class_map.boundary_index is not None else []
    if metric not in logged:
        raise UserError(f"optimized_metric={metric} is not logged at validation; choose one of {', '.join(logged)}")


def check_training_config(cfg: DictConfig) -> None:
    for key in ("figure_slices", "augmentation_preview"):
        if cfg.get(key, 0) < 0:
            raise UserError(f"{key}={cfg[key]} must be 0 (none) or more")
    check_lr(cfg.optimizer)
    check_trainer(cfg)
    check_optimized_metric(cfg)
    check_network(cfg.model, cfg.data.crop_size)
    if cfg.get("train", True):
        net, init_from, _ = module_net(OmegaConf.to_container(cfg.model, resolve=True))  # the module's, as built
        resume = resume_path(cfg)  # ckpt_path=last with no earlier run's last.ckpt is refused here (fit looks again)
        if resume:  # checked again by fit, for Python callers
            check_resumable(resume, net)
        if init_from:  # read again when the module is built: that check serves Python callers too
            read_init_from(init_from, net)
