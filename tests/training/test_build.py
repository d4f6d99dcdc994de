"""Building the module and trainer from a config, and refusing what cannot run here before any work starts."""

import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import OmegaConf

from src.models.unet import UNet
from src.training.build import build_module, build_trainer, instantiate_group
from src.utils.errors import UserError
from tests.conftest import compose_config

SMALL = ["data=synthetic", "model.depth=2", "model.base_channels=4", "trainer.accelerator=cpu", "logger=none"]


def _cfg(*overrides: str):
    cfg = compose_config("train", [*SMALL, *overrides])
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = "/tmp"  # Hydra's run folder does not exist outside a run
    return cfg


def test_the_module_gets_the_configs_network_and_optimizer():
    module = build_module(_cfg("optimizer.lr=0.004"))
    assert isinstance(module.net, UNet) and module.net.depth == 2
    assert module.hparams["optimizer"]["lr"] == 0.004
    assert module.memory_format == torch.channels_last


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["optimizer.lr=0"], "optimizer.lr=0 must be positive"),
        (["optimizer.weight_decay=-1"], r"optimizer \(torch.optim.AdamW\): Invalid weight_decay value: -1"),
        (["+optimizer.betas=[0.9,1.5]"], "Invalid beta parameter at index 1: 1.5"),
        (["optimizer=sgd", "optimizer.momentum=-0.5"], "optimizer.momentum=-0.5 must be from 0 to below 1"),
        (["+optimizer.beta=0.9"], "unexpected keyword argument 'beta'"),
        (["scheduler.min_factor=-1"], r"scheduler \(src.models.schedules.warmup_cosine\): .*min_factor=-1 from 0 to 1"),
        (["model.padding=valid", "model.depth=4", "data.crop_size=64"], "does not fit model.depth=4"),
    ],
)
def test_a_module_that_cannot_train_is_refused(overrides, words):
    with pytest.raises(UserError, match=words):
        build_module(_cfg(*overrides))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a CPU-only machine refuses")
def test_a_trainer_that_cannot_run_here_is_refused():
    """The trainer is built only after src/training/config_checks.py's checks (each tested there)."""
    with pytest.raises(UserError, match="needs a GPU"):
        build_trainer(_cfg("trainer.precision=16-mixed"))


def test_the_trainer_takes_the_configs_arguments():
    trainer = build_trainer(_cfg("trainer.max_steps=7", "trainer.precision=32"), logger=False)
    assert trainer.max_steps == 7 and trainer.precision == "32-true"


def test_a_group_instantiates_only_its_targets():
    node = OmegaConf.create(
        {"lr": {"_target_": "lightning.pytorch.callbacks.LearningRateMonitor"}, "note": "not a target", "none": None}
    )
    built = instantiate_group(node)
    assert len(built) == 1 and isinstance(built[0], LearningRateMonitor)
    assert instantiate_group(None) == []
