import os

import pytest

from src.models.checkpoint import find_last_checkpoint
from src.utils.errors import UserError


def _last(run, mtime: int):
    path = run / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def test_last_is_the_newest_last_ckpt_of_earlier_runs_and_jobs(tmp_path):
    task = tmp_path / "train"
    _last(task / "runs" / "2026-01-01_00-00-00", 100)
    newest = _last(task / "multiruns" / "2026-01-01_00-00-01" / "3", 300)
    current = task / "runs" / "2026-01-02_00-00-00"
    _last(current, 400)  # the run being started is never its own resume point
    assert find_last_checkpoint(task, current) == newest


def test_last_without_an_earlier_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "runs" / "old").mkdir(parents=True)
    with pytest.raises(UserError, match="ckpt_path=last: no earlier run under .* has checkpoints/last.ckpt"):
        find_last_checkpoint(tmp_path / "train", tmp_path / "train" / "runs" / "now")
