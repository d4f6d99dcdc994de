"""Keep freed memory in the process heap, so the next step's tensors reuse it instead of faulting in new pages.

On Linux, glibc's ``malloc`` serves every block above its mmap threshold with a fresh ``mmap`` and returns it to
the kernel on ``free``. A U-Net's activations are megabytes each and are freed every step, so on a CPU each step
asks the kernel again for zeroed pages and faults them in one by one. Raising the threshold to its ceiling,
never trimming the heap and switching ``mmap`` off for ``malloc`` (blocks above the ceiling would still be
mapped afresh) keeps those pages in the process, as PyTorch's CUDA allocator does for GPU memory. It is applied
only where the network runs on the CPU, where it was measured to pay (docs/speed.md); the resident memory then
stays at the run's peak instead of falling back between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD_CEILING = 32 * 2**20  # the largest value glibc accepts on 64-bit machines
NEVER_TRIM = 2**31 - 1


def _glibc_mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "mallopt", None)  # absent in musl, so nothing to tune there


def reuse_freed_memory(enabled: bool = True) -> bool:
    """Tune glibc's malloc as the module docstring says; True when it was applied (Linux with glibc, no GPU)."""
    from src.config.hardware import cuda_available  # no torch import on a CPU-only wheel

    if not enabled or cuda_available():
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_CEILING), (M_TRIM_THRESHOLD, NEVER_TRIM), (M_MMAP_MAX, 0))
    return all([mallopt(parameter, value) == 1 for parameter, value in settings])  # a list: every one is applied
