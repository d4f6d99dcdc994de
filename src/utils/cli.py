"""Running a task under Hydra so that user errors end in one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import logging
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException
from hydra.types import RunMode
from omegaconf.errors import OmegaConfBaseException

from src.config import PROJECT_ROOT, schemas, setup
from src.utils.allocator import reuse_freed_memory
from src.utils.ddp_jobs import child_command_line, is_rank_zero_process, job_scope, parent_job
from src.utils.errors import UserError

log = logging.getLogger(__name__)
USER_ERRORS = (UserError, HydraException, OmegaConfBaseException)
_NOISE = ("full_key:", "object_type=", "reference_type=", "Set the environment variable HYDRA_FULL_ERROR")


OUT_OF_MEMORY = (
    "out of memory ({}); ask for less at once (a smaller tile_size, batch_size, crop_size or block_shape) or run on a "
    "machine with more memory"
)


def _out_of_memory(exc: BaseException) -> bool:
    """numpy's or the host's ``MemoryError``, torch's ``OutOfMemoryError`` (a device's), the ``RuntimeError`` of
    torch's CPU allocator or OpenCV's (albumentations') allocation error, told apart without importing either."""
    cpu_allocator = isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)
    opencv = type(exc).__module__.startswith("cv2") and "(-4:Insufficient memory)" in str(exc)
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or cpu_allocator or opencv


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` (for a rejected config target: its reason) folded into one line."""
    if _out_of_memory(exc):
        return OUT_OF_MEMORY.format(" ".join(str(exc).split()) or type(exc).__name__)
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        target = str(exc).split("'")[1] if str(exc).count("'") >= 2 else "a config target"
        cause = exc.__cause__
        return f"{one_line(cause)} (while building {target})"
    parts: list[str] = []
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(_NOISE) and line not in parts:
            parts.append(line)
    cause = exc.__cause__
    if isinstance(cause, USER_ERRORS) and str(cause) not in " ".join(parts):
        parts.append(one_line(cause))
    return " ".join(parts) or type(exc).__name__


_UNKNOWN_KEY = re.compile(r"Could not override '(?P<full>[^']+)'.*Key '(?P<key>[^']+)' not in '(?P<schema>\w+)'")
_APPEND_HINT = re.compile(r" To append to your config use \+\S+")


def suggest_keys(message: str) -> str:
    """A misspelt key's message with Hydra's hint to append it (``+key=``) replaced by the closest valid keys."""
    found = _UNKNOWN_KEY.search(message)
    schema = getattr(schemas, found["schema"], None) if found else None
    if schema is None or not dataclasses.is_dataclass(schema):
        return message
    prefix = found["full"][: -len(found["key"])]
    fields = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")]
    close = difflib.get_close_matches(found["key"], fields, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(prefix + name for name in close)}?)" if close else ""
    return _APPEND_HINT.sub("", message) + hint


def is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, InstantiationException):
        return True  # a target rejected its arguments: the message names the config node and the reason
    return isinstance(exc, USER_ERRORS) or _out_of_memory(exc)  # settings asking for more memory than there is


# What a run writes before it does any work: Hydra's record, the log, the resolved config, the run record, how the
# data were read, the loggers' first files and the augmentation preview. A failed run holding only these is removed.
BOOKKEEPING_FILES = (
    "{task}.log",
    "config.yaml",
    "run_info.json",
    "data.json",
    "csv/hparams.yaml",
    "csv/metrics.csv",
    "figures/augmented_crops.png",
)
BOOKKEEPING_FOLDERS = (".hydra/", "wandb/")


def _remove_if_empty_run_dir(task_name: str) -> None:
    """A run that failed before producing anything (no checkpoint, metrics or prediction) leaves no folder.

    Only a folder whose every file is bookkeeping of the run is removed, so a folder that holds anything else
    (a user's ``hydra.run.dir`` pointing at their own files, a checkpoint) is never touched.
    """
    try:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    except Exception:
        return
    if not run_dir.is_dir() or run_dir.resolve() == Path.cwd().resolve() or not (run_dir / ".hydra").is_dir():
        return  # only a run folder Hydra made for this run (predict, score and export make none)
    names = {name.format(task=task_name) for name in BOOKKEEPING_FILES}
    files = [p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if not p.is_dir()]
    if all(f in names or f.startswith(BOOKKEEPING_FOLDERS) for f in files):
        shutil.rmtree(run_dir, ignore_errors=True)


def fail(exc: BaseException, task_name: str | None = None) -> None:
    print(f"error: {suggest_keys(one_line(exc))}", file=sys.stderr)
    if task_name and is_rank_zero_process():  # the folder is rank zero's; a DDP child never removes it
        _remove_if_empty_run_dir(task_name)
    sys.exit(2)


def _in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


def _message(exc: BaseException) -> str:
    return one_line(exc) if is_user_error(exc) else f"{type(exc).__name__}: {exc}"


def _record_failure(exc: BaseException, task_name: str | None) -> float:
    """In a sweep, a failed job is logged and recorded in its folder; the sweep goes on with the next job."""
    message = _message(exc)
    log.error("job failed: %s", message, exc_info=not is_user_error(exc))
    try:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        (run_dir / "FAILED").write_text(message + "\n" + ("" if is_user_error(exc) else traceback.format_exc()))
    except Exception:
        pass
    print(f"error: {message} (job {task_name or ''} failed; the sweep goes on)", file=sys.stderr)
    return float("nan")  # an Optuna trial that returns NaN is marked failed


def run_task(task: Callable[[Any], Any], config_name: str) -> Any:
    """Compose ``conf/<config_name>.yaml`` with the command line and call ``task(cfg)``."""
    setup()
    # Let exceptions reach us instead of Hydra's multi-line report, so user errors print as one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    # A DDP child that Lightning started for one job of a multirun reruns that job alone (src/utils/ddp_jobs.py).
    parent = parent_job()
    sys.argv = child_command_line(sys.argv, parent)
    if parent is None and not is_rank_zero_process():  # a rank started by SLURM or torchrun: rank 0 keeps the record
        sys.argv.append("hydra.output_subdir=null")

    @functools.wraps(task)
    def guarded(cfg: Any) -> Any:
        job = HydraConfig.get()
        reuse_freed_memory(bool(cfg.get("reuse_freed_memory", False)))
        try:
            with job_scope(list(job.overrides.task), job.runtime.output_dir, job.job.name, _in_multirun()):
                return task(cfg)
        except Exception as exc:
            if parent and parent["multirun"]:
                # A rank of a sweep's job: the job's own process records the failure and the sweep goes on. A
                # non-zero exit here would make Lightning's process observer kill that process, and the sweep.
                rank, message = os.environ.get("LOCAL_RANK"), _message(exc)
                print(f"error: {message} (rank {rank} of a sweep job)", file=sys.stderr)
                with contextlib.suppress(OSError):  # beside the FAILED its job writes, the cause on this rank
                    (Path(parent["run_dir"]) / f"FAILED.rank{rank}").write_text(message + "\n")
                sys.exit(0)
            if _in_multirun():
                return _record_failure(exc, cfg.get("task_name"))
            if not is_user_error(exc):
                raise
            fail(exc, cfg.get("task_name"))

    main = hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name=config_name)(guarded)
    try:
        return main()
    except Exception as exc:
        if not is_user_error(exc):
            raise
        fail(exc)
