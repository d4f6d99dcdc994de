"""The resolvers our YAML files use."""

from pathlib import Path

from omegaconf import OmegaConf

from src.config import PROJECT_ROOT
from src.config.resolvers import register_resolvers, wandb_offline


def test_wandb_is_offline_unless_the_user_has_a_key(monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_offline()  # no netrc at all
    netrc.write_text("machine api.wandb.ai\n  login user\n  password key\n")
    assert not wandb_offline()
    netrc.write_text("machine example.org\n")
    assert wandb_offline()
    monkeypatch.setenv("WANDB_API_KEY", "key")
    assert not wandb_offline()


def test_resolvers_give_the_project_root_and_the_hardwares_defaults():
    register_resolvers()
    cfg = OmegaConf.create(
        {"root": "${project_root:}", "precision": "${default_precision:}", "workers": "${default_workers:}"}
    )
    assert Path(cfg.root) == PROJECT_ROOT
    assert cfg.precision in ("32", "bf16-mixed") and isinstance(cfg.workers, int)


def test_a_single_run_has_no_wandb_group_and_a_multirun_names_its_sweep_folder():
    from src.config.resolvers import wandb_group
    from src.utils.sweep_summary import sweep_group

    assert wandb_group() == ""  # no Hydra run in progress: a single run, ungrouped
    assert sweep_group("train", "/logs/train/multiruns/2026-12-04_03-50-47") == "train-2026-12-04_03-50-47"
