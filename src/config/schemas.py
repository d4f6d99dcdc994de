"""Config schemas (dataclasses in Hydra's ConfigStore): the type of every key, so a misspelt key or a value of the
wrong type fails while the config is composed, before any work starts, with a message naming the key.

Values live in the YAML files under ``conf/``; a schema gives a default only for keys no YAML sets (``MISSING``
marks the others), so a value is written in one place (tests/config/test_schemas.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class UNetSchema:
    _target_: str = MISSING
    members: int = MISSING
    split_batch: bool = MISSING
    in_channels: int = MISSING
    num_classes: int = MISSING
    depth: int = MISSING
    base_channels: int = MISSING
    padding: str = MISSING
    norm: str = MISSING
    dropout: float = MISSING
    up_mode: str = MISSING
    contrast_sigma: float = MISSING
    init_from: str | None = MISSING
    target: str = MISSING
    offsets: Any = MISSING
    affinity_loss: str = MISSING
    affinity_weight: float = MISSING
    affinity_boundary: str = MISSING


@dataclass
class AugmentationSchema:
    flip_rotate_p: float = MISSING
    elastic_p: float = MISSING
    elastic_grid: int = MISSING
    elastic_std: float = MISSING
    brightness_contrast_p: float = MISSING
    brightness_limit: float = MISSING
    contrast_limit: float = MISSING
    gamma_p: float = MISSING
    gamma_limit: list[float] = MISSING
    blur_p: float = MISSING
    blur_sigma: list[float] = MISSING
    noise_p: float = MISSING
    noise_std: list[float] = MISSING
    patch_blur_p: float = MISSING
    patch_blur_sigma: list[float] = MISSING
    patch_blur_grid: int = MISSING


@dataclass
class ExtraStackSchema:
    source: Any = MISSING
    classes: Any = MISSING
    ignore: int | None = MISSING
    scale: float = MISSING
    share: float = MISSING


@dataclass
class WeightMapSchema:
    w0: float = MISSING
    sigma: float = MISSING
    class_balance: bool = MISSING


@dataclass
class DataSchema:
    _target_: str = MISSING
    source: Any = MISSING
    classes: Any = MISSING
    ignore: int | None = MISSING
    boundary_class: str | None = MISSING
    labels: str = MISSING
    boundary_width: int = MISSING
    class_balance: float = MISSING
    fold: int = MISSING
    num_folds: int = MISSING
    val_fold: int | None = MISSING
    crop_size: int = MISSING
    batch_size: int = MISSING
    val_batch_size: int = MISSING
    train_samples: int = MISSING
    num_workers: int = MISSING
    persistent_workers: bool = MISSING
    pin_memory: bool = MISSING
    augmentation: AugmentationSchema = field(default_factory=AugmentationSchema)
    weight_map: WeightMapSchema | None = MISSING
    membrane_widening: int = MISSING
    seed: int | None = MISSING
    loading: str = MISSING
    lazy_above_gib: float = MISSING
    fold_axis: str = MISSING
    eval_box: int = MISSING
    eval_boxes: int = MISSING
    statistics_boxes: int = MISSING
    statistics_box: int = MISSING
    extra: ExtraStackSchema = field(default_factory=ExtraStackSchema)


@dataclass
class TrainerSchema:
    """``lightning.Trainer``'s arguments; conf/trainer/default.yaml sets the ones marked MISSING."""

    _target_: str = MISSING
    default_root_dir: str | None = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING
    strategy: Any = MISSING
    precision: Any = MISSING
    sync_batchnorm: bool = MISSING
    max_epochs: int | None = MISSING
    min_epochs: int | None = MISSING
    max_steps: int = -1
    max_time: Any = MISSING
    check_val_every_n_epoch: int | None = MISSING
    val_check_interval: Any = None
    log_every_n_steps: int = MISSING
    gradient_clip_val: float | None = MISSING
    accumulate_grad_batches: int = MISSING
    deterministic: Any = MISSING
    benchmark: bool | None = MISSING
    num_sanity_val_steps: int = MISSING
    enable_progress_bar: bool = MISSING
    enable_model_summary: bool = True
    fast_dev_run: Any = MISSING
    limit_train_batches: Any = MISSING
    limit_val_batches: Any = MISSING
    limit_test_batches: Any = MISSING
    limit_predict_batches: Any = None
    profiler: Any = None
    detect_anomaly: bool = False
    overfit_batches: Any = 0.0


@dataclass
class InferenceSchema:
    """The inference recipe (conf/inference/default.yaml); src.predict and src.eval take the same keys, null
    meaning the checkpoint's."""

    tile_size: int = MISSING
    overlap: float = MISSING
    stitching: str = MISSING
    sigma_scale: float = MISSING
    halo: int = MISSING
    tta: Any = MISSING
    scored: str = MISSING


@dataclass
class RecipeOverrides:
    """src.predict's and src.eval's recipe keys (conf/inference/checkpoint.yaml): null = the checkpoint's."""

    tile_size: int | None = MISSING
    overlap: float | None = MISSING
    stitching: str | None = MISSING
    sigma_scale: float | None = MISSING
    halo: int | None = MISSING
    tta: Any = MISSING
    scored: str | None = MISSING


@dataclass
class TaskSchema:
    """What every task's entry config has."""

    task_name: str = MISSING
    paths: Any = None


@dataclass
class TrainSchema(TaskSchema):
    tags: list[str] = MISSING
    seed: int | None = MISSING
    ckpt_path: str | None = MISSING
    train: bool = MISSING
    test: bool = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    reuse_freed_memory: bool = MISSING
    figure_slices: int = MISSING
    augmentation_preview: int = MISSING
    optimized_metric: str = MISSING
    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    loss: Any = None
    postprocess: Any = None
    inference: InferenceSchema = field(default_factory=InferenceSchema)
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None


@dataclass
class EvalSchema(RecipeOverrides, TaskSchema):
    tags: list[str] = MISSING
    seed: int | None = MISSING
    ckpt_path: str = MISSING
    figure_slices: int = MISSING
    reuse_freed_memory: bool = MISSING
    data: Any = MISSING
    trainer: Any = MISSING
    postprocess: Any = None
    compare: Any = None


@dataclass
class ScoreSchema(TaskSchema):
    prediction: str = MISSING
    labels: str = MISSING
    prediction_key: str | None = MISSING
    label_key: str | None = MISSING
    prediction_slices: Any = MISSING
    label_slices: Any = MISSING
    kind: str = MISSING
    invert: bool = MISSING
    thresholds: list[float] = MISSING
    workers: int = MISSING
    output: str | None = MISSING
    overwrite: bool = MISSING
    compact: bool = MISSING
    postprocess: Any = None
    data: Any = None


@dataclass
class PredictSchema(RecipeOverrides, TaskSchema):
    ckpt_path: str = MISSING
    input: str = MISSING
    input_key: str | None = MISSING
    output: str = MISSING
    block_shape: list[int] = MISSING
    block_halo: Any = MISSING
    cells_halo: int = MISSING
    resume: bool = MISSING
    num_workers: int = MISSING
    trainer: Any = None
    slices: Any = MISSING
    batch_size: int = MISSING
    queue_megapixels: float = MISSING
    device: str = MISSING
    precision: str = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    reuse_freed_memory: bool = MISSING
    voxel_size: Any = MISSING
    voxel_unit: str = MISSING
    prob_dtype: str = MISSING
    probabilities: bool = MISSING
    overwrite: bool = MISSING
    progress: bool = MISSING
    postprocess: Any = None


@dataclass
class ExportSchema(TaskSchema):
    ckpt_path: str = MISSING
    format: str = MISSING
    output: str | None = MISSING
    overwrite: bool = MISSING
    opset: int = MISSING
    check_sides: list[int] = MISSING
    tolerance: float = MISSING
    bioimageio: Any = MISSING


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
