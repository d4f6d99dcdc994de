"""The run record: the resolved config and where the run came from."""

import json

from omegaconf import OmegaConf

from src.config.hardware import cpu_description
from src.utils.run_record import git_commit, save_run_record


def test_the_record_holds_the_resolved_config_the_commit_and_the_packages(tmp_path):
    cfg = OmegaConf.create({"seed": 3, "model": {"depth": "${seed}"}})
    save_run_record(tmp_path, cfg)
    assert OmegaConf.load(tmp_path / "config.yaml") == {"seed": 3, "model": {"depth": 3}}
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["git_commit"] == git_commit()
    assert info["git_commit"] is None or len(info["git_commit"].removesuffix("-dirty")) == 40
    assert {"python", "torch", "lightning", "hydra-core"} <= set(info["packages"])
    assert info["cpu"] == cpu_description()
