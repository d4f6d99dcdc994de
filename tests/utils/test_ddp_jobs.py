import json
import os

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from src.utils.ddp_jobs import JOB_ENV, child_command_line, is_rank_zero_process, job_scope, parent_job

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def _job(pid: int, run_dir: str = "/runs/a b/it's=here") -> dict:
    return {"pid": pid, "overrides": ["seed=2", "model.depth=3"], "run_dir": run_dir, "name": "train", "multirun": True}


def test_a_child_of_the_job_process_reruns_that_job_in_its_folder(monkeypatch):
    monkeypatch.setenv(JOB_ENV, json.dumps(_job(os.getppid())))
    monkeypatch.setenv("LOCAL_RANK", "1")
    job = parent_job()
    argv = child_command_line(["src/train.py", "-m", "seed=1,2"], job)
    assert argv[:3] == ["src/train.py", "seed=2", "model.depth=3"] and "-m" not in argv
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(argv[1:])}
    assert parsed["hydra.run.dir"] == "/runs/a b/it's=here"  # the path survives Hydra's parser unchanged
    assert parsed["hydra.mode"] == "RUN" and parsed["hydra.output_subdir"] is None


@pytest.mark.parametrize(
    "env",
    [
        {"LOCAL_RANK": "0"},  # rank zero is the job's own process
        {"LOCAL_RANK": "1", "JOB_PID": "other"},  # started by someone else (a shell inside the job)
        {},  # no launcher at all
    ],
)
def test_other_processes_keep_their_command_line(monkeypatch, env):
    pid = os.getppid() + 1 if env.pop("JOB_PID", None) else os.getppid()
    monkeypatch.setenv(JOB_ENV, json.dumps(_job(pid)))
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert parent_job() is None
    assert child_command_line(["x", "-m", "seed=1,2"], parent_job()) == ["x", "-m", "seed=1,2"]


def test_rank_zero_is_read_from_any_launcher(monkeypatch):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert is_rank_zero_process()
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert not is_rank_zero_process()


def test_a_job_leaves_the_environment_as_it_found_it(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    before = dict(os.environ)
    with job_scope(["seed=1"], "/runs/0", "train", multirun=True):
        assert json.loads(os.environ[JOB_ENV])["pid"] == os.getpid()
        os.environ["LOCAL_RANK"] = "0"  # what Lightning's launcher sets in the job's process
        os.environ["MASTER_PORT"] = "12345"
    assert dict(os.environ) == before
