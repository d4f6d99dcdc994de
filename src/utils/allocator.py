"""Keep freed memory in the process heap, so the next step's tensors reuse it instead of faulting in new pages.

On Linux, glibc's ``malloc`` serves every block above its mmap threshold (128 KiB at first, raised as large blocks
are freed, up to 32 MiB) with a fresh ``mmap`` and returns it to the kernel on ``free``. A U-Net's activations are
megabytes each and are freed every step, so each step asks the kernel again for zeroed pages and faults them in
one by one. Raising the threshold to its ceiling and never trimming the heap keeps those pages in the process,
as PyTorch's CUDA allocator does for GPU memory. Measured on the 2-core CI machine (docs/benchmarks.md): the
prediction benchmark's forward pass takes 22-32% less time, ``src.predict`` of the 30 ISBI test slices 6.2-6.6 s
instead of 7.7-8.0 s, a ``src.train`` step of the recipe 3% faster.

Blocks above that ceiling would still be mapped afresh each time (the paper-size network's activations at full
resolution are 32 MiB in bf16 and 64 MiB in fp32, and 32 MiB is already over it), so ``mmap`` is switched off for
``malloc`` altogether (``M_MMAP_MAX`` 0): every block comes from the heap. On a 2-core Xeon with AMX, an
elementwise op that writes a fresh (1, 64, 512, 512) bf16 tensor took 13.5-17.5 ms on mapped pages and 3.4-4.6 ms
on reused ones, and a bf16 training step of the paper-size network 1.31-1.33 s against 1.23-1.25 s (two runs
each). The resident memory stays at the peak of the run instead of falling back between steps.
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
    """Tune glibc's malloc as the module docstring says; True when it was applied (Linux with glibc)."""
    if not enabled:
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_CEILING), (M_TRIM_THRESHOLD, NEVER_TRIM), (M_MMAP_MAX, 0))
    return all([mallopt(parameter, value) == 1 for parameter, value in settings])  # a list: every one is applied
