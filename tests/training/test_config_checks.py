"""The training config's checks before Lightning is imported: each bad setting is refused with the key named,
a good config passes, and none of it imports Lightning."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest
import torch

from src.training.config_checks import check_training_config
from src.utils.errors import UserError
from tests.conftest import compose_config

SMALL = ["data=synthetic", "model.depth=3", "model.base_channels=4", "trainer.accelerator=cpu", "data.crop_size=32"]


def _cfg(*overrides: str):
    return compose_config("train", [*SMALL, *overrides])


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["optimizer.lr=-0.001"], "optimizer.lr=-0.001 must be positive"),
        (["optimizer=sgd", "optimizer.momentum=2"], "optimizer.momentum=2 must be from 0 to below 1"),
        (
            ["optimized_metric=val/vrnad"],
            "optimized_metric=val/vrnad is not logged at validation; choose one of",
        ),
        (["model.depth=0"], "model.depth=0 must be at least 1"),
        (["model.depth=6"], "data.crop_size=32 does not fit model.depth=6"),
        (["data.crop_size=36"], "data.crop_size=36 does not fit model.depth=3"),
        (["model.dropout=1.5"], "model.dropout=1.5 must be in"),
        (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1.0 must be 0"),
        (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0 must be at least 1"),
        (["figure_slices=-1"], "figure_slices=-1 must be 0"),
        (["augmentation_preview=-2"], "augmentation_preview=-2 must be 0"),
        (["model.target=affinities", "model.offsets=[[-1,0,0],[0,-1,0]]"], "model.offsets"),
    ],
)
def test_a_network_or_optimizer_that_cannot_train_is_refused(overrides, words):
    with pytest.raises(UserError, match=words):
        check_training_config(_cfg(*overrides))


def test_init_from_a_network_of_another_shape_is_refused_with_the_settings(small_checkpoint):
    """The conftest's checkpoint is a depth-3, 4-channel, valid-padding U-Net: this run's is same-padded."""
    check_training_config(_cfg(f"model.init_from={small_checkpoint}", "model.padding=valid", "data.crop_size=92"))
    with pytest.raises(UserError, match=r"holds a network with padding=valid but this run's has padding=same"):
        check_training_config(_cfg(f"model.init_from={small_checkpoint}", "model.padding=same"))


def test_resuming_a_checkpoint_of_another_network_is_refused_with_the_settings(tmp_path):
    """The checkpoint records the module's ``net`` as src.train builds it from ``model``: the same settings resume,
    another depth is refused naming both, before the data or Lightning."""
    from omegaconf import OmegaConf

    from src.models.outputs import module_net

    cfg = _cfg("model.target=affinities")
    net = module_net(OmegaConf.to_container(cfg.model, resolve=True))[0]
    torch.save({"hyper_parameters": {"net": net}, "state_dict": {}}, tmp_path / "last.ckpt")
    check_training_config(_cfg("model.target=affinities", f"ckpt_path={tmp_path / 'last.ckpt'}"))
    with pytest.raises(UserError, match=r"holds a network with depth=3 but the config asks for depth=2"):
        check_training_config(_cfg("model.target=affinities", "model.depth=2", f"ckpt_path={tmp_path / 'last.ckpt'}"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a CPU-only machine refuses")
@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["trainer.precision=16-mixed"], "needs a GPU"),
        ([f"trainer.devices={(os.cpu_count() or 1) + 1}"], "CPU processes but this machine has"),
        (["trainer=ddp", "trainer.accelerator=cpu", "trainer.sync_batchnorm=true"], "SyncBatchNorm is CUDA-only"),
    ],
)
def test_a_trainer_that_cannot_run_here_is_refused(overrides, words):
    with pytest.raises(UserError, match=words):
        check_training_config(_cfg(*overrides))


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("trainer.val_check_interval=0", r"val_check_interval=0 must be a fraction of an epoch above 0"),
        ("trainer.val_check_interval=0.0", r"val_check_interval=0.0 must be"),
        ("trainer.check_val_every_n_epoch=0", r"check_val_every_n_epoch=0 must be at least 1"),
    ],
)
def test_validation_intervals_of_zero_are_refused(override, words):
    # Lightning accepted both and divided by them after the first training step (ZeroDivisionError)
    with pytest.raises(UserError, match=words):
        check_training_config(_cfg(override))


@pytest.mark.parametrize("experiment", ["isbi2012_cpu", "isbi2012_cpu_affinities", "isbi2012_paper"])
def test_the_recipes_pass(experiment):
    check_training_config(compose_config("train", [f"experiment={experiment}", "trainer.accelerator=cpu"]))


def test_the_checks_import_no_lightning():
    script = f"""
import sys
from tests.conftest import compose_config
from src.training.config_checks import check_training_config
SMALL = {SMALL!r}
_cfg = lambda *extra: compose_config("train", [*SMALL, *extra])
from src.utils.errors import UserError
check_training_config(_cfg())
try:
    check_training_config(_cfg("model.depth=6"))
except UserError:
    pass
print(sorted(name for name in ("lightning", "torchmetrics", "torch") if name in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # torch too, where the wheel is CPU-only (src.config.hardware.cuda_available needs no import to say so)
    expected = "[]" if importlib.metadata.version("torch").endswith("+cpu") else "['torch']"
    assert out.stdout.strip().splitlines()[-1] == expected


PARTS = [
    (["optimizer.weight_decay=-1"], r"optimizer \(torch.optim.AdamW\): Invalid weight_decay value: -1"),
    (["scheduler.min_factor=-1"], r"scheduler \(src.models.schedules.warmup_cosine\): .*min_factor=-1 from 0 to 1"),
    (["loss=dice_ce", "loss.ce_weight=-1"], r"loss.ce_weight=-1, .* must be 0 or more"),
    (["data.augmentation.blur_p=1.5"], r"data.augmentation.blur_p=1.5 is a probability"),
    (["data.augmentation.blur_p=0.5", "data.augmentation.blur_sigma=[-1,2]"], r"sigma_limit: .*\(albumentations\)"),
    (
        ["postprocess=mutex_watershed"],
        r"postprocess MutexWatershed reads affinities, but this network predicts classes",
    ),
    (["model.target=affinities", "postprocess=learned_edges", "postprocess.classifiers=0"], r"classifiers=0 must be"),
]


def test_the_optimizer_loss_augmentation_and_post_processing_are_made_once_and_refused_before_lightning():
    """What torch, the schedule, the loss, albumentations or the post-processing refuse ends in one line before the
    data module is made (a decoder of affinities for a classes network used to be refused after training); good
    configs pass, and none of it imports Lightning."""
    script = f"""
import sys
from tests.conftest import compose_config
from src.training.config_checks import check_training_parts
from src.utils.cli import is_user_error, one_line
SMALL = {SMALL!r}
check_training_parts(compose_config("train", SMALL))
check_training_parts(compose_config("train", [*SMALL, "model.target=affinities", "postprocess=mutex_watershed"]))
for overrides, words in {PARTS!r}:
    try:
        check_training_parts(compose_config("train", [*SMALL, *overrides]))
        print("passed", overrides)
    except Exception as exc:
        print(one_line(exc) if is_user_error(exc) else repr(exc))
print(sorted(name for name in ("lightning", "torchmetrics") if name in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    *refusals, imported = out.stdout.strip().splitlines()[-len(PARTS) - 1 :]
    for refusal, (_, words) in zip(refusals, PARTS, strict=True):
        assert re.search(words, refusal) and "\n" not in refusal, refusal
    assert imported == "[]"
