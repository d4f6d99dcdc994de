"""The ``${name:}`` resolvers our YAML files use."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from src.config import PROJECT_ROOT
from src.config.help import task_help


def wandb_offline() -> bool:
    """W&B runs offline unless the user has an API key (never a login prompt, never a network hang)."""
    if os.environ.get("WANDB_MODE") in ("online", "run"):
        return False
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" not in netrc.read_text()
    except OSError:
        return True


def wandb_group() -> str:
    """The W&B group of a run: its multirun's folder name (a sweep or a cross-validation reads as one group on the
    project page), empty for a single run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    from src.utils.sweep_summary import sweep_group

    hydra = HydraConfig.get()
    return sweep_group(hydra.job.name, hydra.sweep.dir) if str(hydra.mode).endswith("MULTIRUN") else ""


def _hardware(name: str):
    """A resolver from :mod:`src.config.hardware`, imported (with torch) only when a config uses it."""

    def resolve():
        from src.config import hardware

        return getattr(hardware, name)()

    return resolve


def register_resolvers() -> None:
    for name, fn in {
        "project_root": lambda: str(PROJECT_ROOT),
        "default_precision": _hardware("default_precision"),
        "default_workers": _hardware("default_workers"),
        "cuda_available": _hardware("cuda_available"),
        "wandb_offline": wandb_offline,
        "wandb_group": wandb_group,
        "task_help": task_help,
        "len": len,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
