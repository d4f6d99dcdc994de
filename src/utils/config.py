"""Config schemas (dataclasses in Hydra's ConfigStore) and the resolvers our YAML files use.

The schemas make a misspelt key or a value of the wrong type fail while the config is composed, before any
work starts, with a message naming the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CPUINFO = Path("/proc/cpuinfo")


# ----- resolvers ----------------------------------------------------------------------------------------
def cpu_has_native_bf16() -> bool:
    try:
        flags = CPUINFO.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_description() -> str:
    """CPU model, cores and whether bf16 is native: what decides the steps a time budget buys on this machine."""
    import platform

    try:
        model = next(line.split(":", 1)[1].strip() for line in CPUINFO.read_text().splitlines() if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}"


def default_precision() -> str:
    """bf16-mixed where the hardware computes bf16 natively (recent GPUs, CPUs with AVX512-BF16/AMX), else 32."""
    import torch

    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if cpu_has_native_bf16() else "32"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def default_workers() -> int:
    """Data-loading processes: none when training runs on the CPU, up to 8 (one core kept free) beside a GPU.

    On the CPU every core already computes the network; a loader process only competes with it (the CPU recipe
    on 2 cores: 0.385 s a step with one worker, 0.349 s loading in the main process; docs/benchmarks.md).
    """
    import torch

    if not torch.cuda.is_available():
        return 0
    return max(1, min(8, (os.cpu_count() or 1) - 1))


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


def register_resolvers() -> None:
    for name, fn in {
        "project_root": lambda: str(PROJECT_ROOT),
        "default_precision": default_precision,
        "default_workers": default_workers,
        "cuda_available": cuda_available,
        "wandb_offline": wandb_offline,
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


# ----- schemas -------------------------------------------------------------------------------------------
@dataclass
class UNetSchema:
    _target_: str = "src.models.unet.build_unet"
    members: int = 1
    split_batch: bool = False
    in_channels: int = 1
    num_classes: int = 2
    depth: int = 4
    base_channels: int = 64
    padding: str = "same"
    norm: str = "batch"
    dropout: float = 0.0
    up_mode: str = "transpose"


@dataclass
class AugmentationSchema:
    flip_rotate_p: float = 1.0
    elastic_p: float = 0.0
    elastic_grid: int = 3
    elastic_std: float = 10.0
    brightness_contrast_p: float = 0.0
    brightness_limit: float = 0.1
    contrast_limit: float = 0.1
    gamma_p: float = 0.0
    gamma_limit: list[float] = field(default_factory=lambda: [80.0, 120.0])
    blur_p: float = 0.0
    blur_sigma: list[float] = field(default_factory=lambda: [0.5, 1.0])
    noise_p: float = 0.0
    noise_std: list[float] = field(default_factory=lambda: [0.02, 0.06])


@dataclass
class WeightMapSchema:
    w0: float = 10.0
    sigma: float = 5.0
    class_balance: bool = True


@dataclass
class DataSchema:
    _target_: str = "src.data.datamodule.EMDataModule"
    source: Any = MISSING
    fold: int = 4
    num_folds: int = 5
    val_fold: int | None = None
    crop_size: int = 256
    batch_size: int = 4
    val_batch_size: int = 1
    train_samples: int = 384
    num_workers: int = 1
    persistent_workers: bool = True
    pin_memory: bool = False
    augmentation: AugmentationSchema = field(default_factory=AugmentationSchema)
    weight_map: WeightMapSchema | None = None
    membrane_widening: int = 0
    seed: int | None = None


@dataclass
class TrainerSchema:
    _target_: str = "lightning.Trainer"
    default_root_dir: str | None = None
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32"
    sync_batchnorm: bool = False
    max_epochs: int | None = None
    min_epochs: int | None = None
    max_steps: int = -1
    max_time: Any = None
    check_val_every_n_epoch: int | None = 1
    val_check_interval: Any = None
    log_every_n_steps: int = 50
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    deterministic: Any = False
    benchmark: bool | None = None
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    fast_dev_run: Any = False
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    profiler: Any = None
    detect_anomaly: bool = False
    overfit_batches: Any = 0.0


@dataclass
class TrainSchema:
    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    seed: int | None = 12345
    ckpt_path: str | None = None
    train: bool = True
    test: bool = True
    test_tta: Any = True
    channels_last: bool = True
    compile: bool = False
    reuse_freed_memory: bool = True
    figure_slices: int = 3
    augmentation_preview: int = 8
    optimized_metric: str = "val/vrand"
    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    loss: Any = None
    postprocess: Any = None
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: Any = MISSING


@dataclass
class EvalSchema:
    task_name: str = "eval"
    tags: list[str] = field(default_factory=list)
    seed: int | None = 12345
    ckpt_path: str = MISSING
    figure_slices: int = 3
    tta: Any = False
    reuse_freed_memory: bool = True
    data: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    postprocess: Any = None
    paths: Any = MISSING


@dataclass
class ScoreSchema:
    task_name: str = "score"
    prediction: str = MISSING
    labels: str = MISSING
    prediction_slices: Any = None
    label_slices: Any = None
    kind: str = "auto"
    invert: bool = False
    thresholds: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(10)])
    workers: int = 0
    output: str | None = None
    overwrite: bool = False
    compact: bool = False
    postprocess: Any = None


@dataclass
class PredictSchema:
    task_name: str = "predict"
    ckpt_path: str = MISSING
    input: str = MISSING
    output: str = MISSING
    slices: Any = None
    tile_size: int = 256
    overlap: float = 0.5
    stitching: str = "crop"
    sigma_scale: float = 0.125
    halo: int = 0
    batch_size: int = 8
    queue_megapixels: float = 16.0
    tta: Any = False
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    reuse_freed_memory: bool = True
    prob_dtype: str = "float32"
    overwrite: bool = False
    progress: bool = True
    postprocess: Any = None
    paths: Any = MISSING


@dataclass
class ExportSchema:
    task_name: str = "export"
    ckpt_path: str = MISSING
    format: str = "onnx"
    output: str | None = None
    overwrite: bool = False
    opset: int = 18
    check_sides: list[int] = field(default_factory=lambda: [64, 160, 300])
    tolerance: float = 1e-4
    paths: Any = MISSING


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(name="eval_schema", node=EvalSchema)
    store.store(name="score_schema", node=ScoreSchema)
    store.store(name="predict_schema", node=PredictSchema)
    store.store(name="export_schema", node=ExportSchema)
    store.store(group="model", name="unet_schema", node=UNetSchema)
    store.store(group="data", name="data_schema", node=DataSchema)
    store.store(group="trainer", name="trainer_schema", node=TrainerSchema)


def setup() -> None:
    register_resolvers()
    register_schemas()
