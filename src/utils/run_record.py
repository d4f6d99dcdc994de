"""The run record: the resolved config and its provenance (git commit, package versions, machine)."""

from __future__ import annotations

import contextlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich import print as rich_print
from rich.tree import Tree

from src.config import PROJECT_ROOT
from src.config.hardware import cpu_description
from src.utils.atomic import write_json_atomic, write_text_atomic

PACKAGES = (
    "torch",
    "lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "albumentations",
    "tifffile",
    "wandb",
    "numpy",
    "scipy",
    "scikit-image",
)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def save_run_record(output_dir: str | Path, cfg: DictConfig) -> None:
    """The resolved config and the run's provenance (git commit, package versions, machine and CPU)."""
    output_dir = Path(output_dir)
    write_text_atomic(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_json_atomic(
        output_dir / "run_info.json",
        {
            "git_commit": git_commit(),
            "packages": package_versions(),
            "machine": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu": cpu_description(),
        },
    )


def print_config_tree(cfg: DictConfig, first: tuple[str, ...] = ("data", "model", "trainer")) -> None:
    """The resolved config as a rich tree, main groups first."""
    tree = Tree("config", guide_style="dim")
    keys = [k for k in first if k in cfg] + [k for k in cfg if k not in first]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(f"[bold]{key}[/bold]").add(text.rstrip())
    rich_print(tree)
