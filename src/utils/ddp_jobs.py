"""DDP under Hydra: the processes Lightning starts for ranks 1.. rerun exactly their parent's job, in its folder.

Lightning's DDP launcher starts each extra rank as ``python -m src.<task> <the parent's command line>``. For a
single run that works, but inside a multirun the command line still holds ``-m`` and the sweep, so every child
would start a sweep of its own (new folders, wrong jobs). And the parent process keeps the ``LOCAL_RANK``,
``WORLD_SIZE`` and ``MASTER_PORT`` that the launcher set, plus an initialised process group, so the next job of
the sweep would believe it was started externally and wait for ranks that never come.

Here, a process running a job tells its children (through one environment variable) its job's overrides and
run folder; a child started by that process rewrites its command line into a single run of that job in that
folder. When the job ends, the process group is destroyed and the environment restored for the next job.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

JOB_ENV = "SRC_DDP_PARENT_JOB"
# Rank variables of the launchers we run under (Lightning, torchrun, SLURM): any of them non-zero = not rank 0.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
# What Lightning's DDP launcher sets in the process that starts the ranks (and our own): reset after each job.
_JOB_VARIABLES = (JOB_ENV, "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def is_rank_zero_process() -> bool:
    """True unless this process is a non-zero rank of a distributed run (read from the launchers' variables)."""
    return all(os.environ.get(name, "0") in ("", "0") for name in _RANK_VARIABLES)


def _hydra_string(value: str) -> str:
    """``value`` as a quoted Hydra override value (a path with spaces, ``=`` or quotes survives)."""
    return "'" + value.replace("'", "\\'") + "'"


def parent_job() -> dict | None:
    """The job this process is a DDP child of (started by that job's own process), else None.

    Only a process whose parent is the job's process (Lightning's launcher starts children with Popen) takes
    the job's place; anything else, e.g. a run started from a shell inside a job, keeps its own arguments.
    """
    raw = os.environ.get(JOB_ENV)
    if not raw or is_rank_zero_process():
        return None
    job = json.loads(raw)
    return job if job["pid"] == os.getppid() else None


def child_command_line(argv: list[str], job: dict | None) -> list[str]:
    """The command line of a DDP child of ``job``: that job alone, in its run folder (``argv`` if no job)."""
    if job is None:
        return argv
    return [
        argv[0],
        *job["overrides"],
        f"hydra.run.dir={_hydra_string(job['run_dir'])}",
        "hydra.mode=RUN",  # an hparams_search config sets MULTIRUN; a child runs one job
        "hydra.output_subdir=null",  # the parent writes the run's .hydra record
        f"hydra.job.name={job['name']}_rank{os.environ.get('LOCAL_RANK', '')}",
    ]


@contextmanager
def job_scope(overrides: list[str], run_dir: str, job_name: str, multirun: bool) -> Iterator[None]:
    """Run one job: its DDP children rerun it in ``run_dir``; afterwards the process is ready for the next job."""
    saved = {name: os.environ.get(name) for name in _JOB_VARIABLES}
    job = {"pid": os.getpid(), "overrides": overrides, "run_dir": run_dir, "name": job_name, "multirun": multirun}
    os.environ[JOB_ENV] = json.dumps(job)
    try:
        yield
    finally:
        _destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _destroy_process_group() -> None:
    if "torch.distributed" not in sys.modules:
        return  # a job that failed before importing torch started no process group
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
