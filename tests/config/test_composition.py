"""Every config group option composes, and typos or wrong types fail while composing, naming the key."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from src.config import PROJECT_ROOT
from tests.conftest import compose_config

CONF = PROJECT_ROOT / "conf"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if p.stem != "base")


@pytest.mark.parametrize(
    "group", ["data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment", "debug"]
)
def test_every_option_of_every_group_composes(group):
    options = _options(group)
    assert options, f"conf/{group} has no options"
    for option in options:
        overrides = [f"{group}={option}"]
        if option == "tiff":
            overrides += ["data.source.images=a.tif", "data.source.labels=b.tif"]
        cfg = compose_config("train", overrides)
        assert cfg.model.depth >= 1 and cfg.data._target_ == "src.data.datamodule.EMDataModule"


def test_experiments_set_what_they_promise():
    paper = compose_config("train", ["experiment=isbi2012_paper"])
    assert (paper.model.base_channels, paper.model.padding, paper.model.depth) == (64, "valid", 4)
    assert paper.optimizer.momentum == 0.99 and paper.data.batch_size == 1 and paper.trainer.max_epochs == 200
    cpu = compose_config("train", ["experiment=isbi2012_cpu"])
    assert cpu.trainer.max_time == "00:00:10:00" and cpu.trainer.max_steps == 1500  # whichever ends first
    assert cpu.data.fold == 4 and cpu.model.depth == 5 and cpu.model.members == 2  # two U-Nets, averaged
    assert cpu.loss._target_.endswith("DiceCrossEntropy") and not cpu.loss.weighted  # Dice + plain CE
    affinities = compose_config("train", ["experiment=isbi2012_cpu_affinities"])
    assert affinities.model.target == "affinities" and affinities.inference.scored == "cells"
    assert affinities.postprocess._target_.endswith("LearnedEdges") and affinities.postprocess.classifier is None
    assert affinities.trainer.max_steps == cpu.trainer.max_steps and affinities.model.members == cpu.model.members


def test_eval_config_composes():
    cfg = compose_config("eval", ["ckpt_path=x.ckpt"])
    assert cfg.ckpt_path == "x.ckpt" and cfg.data.fold == 4


def test_typo_and_wrong_type_fail_naming_the_key():
    with pytest.raises(ConfigCompositionException) as typo:
        compose_config("train", ["model.dept=5"])
    assert "model.dept" in str(typo.value)
    with pytest.raises(ConfigCompositionException) as wrong:
        compose_config("train", ["data.batch_size=four"])
    assert "data.batch_size" in str(wrong.value)


def test_typo_inside_a_yaml_file_fails(tmp_path: Path):
    # A misspelt key in a user's own option file is refused by the schema, not silently ignored.
    from hydra import compose, initialize_config_dir

    from src.config import setup

    setup()
    bad = tmp_path / "conf"
    (bad / "model").mkdir(parents=True)
    (bad / "model" / "typo.yaml").write_text("defaults:\n  - unet_schema\n  - _self_\nbase_chanels: 8\n")
    (bad / "train.yaml").write_text("defaults:\n  - model: typo\n")
    with (
        initialize_config_dir(config_dir=str(bad), version_base="1.3"),
        pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as err,
    ):
        compose(config_name="train")
    assert "base_chanels" in str(err.value) or "base_chanels" in str(err.value.__cause__)


@pytest.mark.parametrize("option", ["adamw", "sgd"])
def test_the_optimizers_are_fused_and_step_as_the_loop_does(option):
    import torch
    from hydra.utils import instantiate

    cfg = compose_config("train", [f"optimizer={option}"])
    torch.manual_seed(0)
    fused_params = [torch.nn.Parameter(torch.randn(33, 7)), torch.nn.Parameter(torch.randn(5))]
    loop_params = [torch.nn.Parameter(p.detach().clone()) for p in fused_params]
    start = [p.detach().clone() for p in fused_params]
    fused = instantiate(cfg.optimizer)(fused_params)
    loop = instantiate(cfg.optimizer, fused=False)(loop_params)
    assert fused.defaults["fused"] is True and loop.defaults["fused"] is False
    for _ in range(5):
        grads = [torch.randn_like(p) for p in fused_params]
        for params, optimizer in ((fused_params, fused), (loop_params, loop)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            optimizer.step()
    for a, b, a0 in zip(fused_params, loop_params, start, strict=True):
        assert (a - a0).abs().min() > 0  # every parameter moved ...
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # ... as the loop moved it
