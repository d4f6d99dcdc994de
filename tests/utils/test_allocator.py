"""reuse_freed_memory: a large tensor comes from the heap, not from a fresh mmap, and its pages stay after free."""

import importlib.metadata
import json
import subprocess
import sys

import pytest

from src.utils.allocator import reuse_freed_memory

MALLINFO = """
import ctypes, json, sys
import torch

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
"""

PROBE = (
    MALLINFO
    + """
from src.utils.allocator import reuse_freed_memory
applied = reuse_freed_memory(sys.argv[1] == "on")
before = libc.mallinfo2()
x = torch.empty(16 * 2**20, dtype=torch.uint8)  # one 16 MiB activation-sized block
during = libc.mallinfo2()
del x
after = libc.mallinfo2()
big = torch.empty(64 * 2**20, dtype=torch.uint8)  # above glibc's largest mmap threshold (32 MiB)
with_big = libc.mallinfo2()
print(json.dumps({"applied": applied, "mmapped_blocks": during.hblks - before.hblks,
                  "free_in_heap_after": after.fordblks, "mmapped_big_blocks": with_big.hblks - after.hblks}))
"""
)

TASK_PROBE = (
    MALLINFO
    + """
from src.utils.cli import run_task

def task(cfg):
    before = libc.mallinfo2().hblks
    x = torch.empty(16 * 2**20, dtype=torch.uint8)
    print(json.dumps({"knob": cfg.reuse_freed_memory, "mmapped_blocks": libc.mallinfo2().hblks - before}))

run_task(task, "predict")
"""
)


def _report(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_large_tensor_reuses_heap_memory_instead_of_a_fresh_mmap():
    default, tuned = _report(PROBE, "off"), _report(PROBE, "on")
    assert default["applied"] is False and tuned["applied"] is True
    assert default["mmapped_blocks"] == 1  # glibc's default: a 16 MiB block is its own mmap, unmapped on free
    assert default["mmapped_big_blocks"] == 1
    assert default["free_in_heap_after"] < 16 * 2**20
    assert tuned["mmapped_blocks"] == 0  # tuned: it comes from the heap ...
    assert tuned["free_in_heap_after"] >= 16 * 2**20  # ... and stays there for the next step
    assert tuned["mmapped_big_blocks"] == 0  # a block above the largest threshold comes from the heap too


@pytest.mark.parametrize("setting, mmapped", [([], 0), (["reuse_freed_memory=false"], 1)])
def test_the_tasks_apply_the_config_knob(tmp_path, setting, mmapped):
    overrides = [f"hydra.run.dir={tmp_path}", "hydra.output_subdir=null", *setting]
    assert _report(TASK_PROBE, *overrides) == {"knob": not setting, "mmapped_blocks": mmapped}


def test_switched_off_it_changes_nothing():
    assert reuse_freed_memory(False) is False


def test_a_cpu_only_torch_is_known_as_such_without_importing_it():
    """A task's own checks come before torch's import: with the CPU wheel the knob does not import it to ask."""
    script = "import sys; from src.utils.allocator import reuse_freed_memory; reuse_freed_memory(True); "
    script += "print('torch' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    cpu_wheel = importlib.metadata.version("torch").endswith("+cpu")
    assert imported.strip().splitlines()[-1] == str(not cpu_wheel)
