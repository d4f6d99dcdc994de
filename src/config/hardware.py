"""What the machine offers: native bf16, devices, data-loading processes; and the one precision resolver.

Precision names are Lightning's everywhere (``trainer.precision`` and ``src.predict``'s ``precision``):
``32``, ``bf16-mixed`` and ``16-mixed`` (GPUs only), plus ``auto`` where a task chooses for the hardware.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from src.utils.errors import UserError

if TYPE_CHECKING:
    import torch

CPUINFO = Path("/proc/cpuinfo")
PRECISIONS = {"32": None, "bf16-mixed": "bfloat16", "16-mixed": "float16"}  # the autocast dtype's name in torch


def cpu_has_native_bf16() -> bool:
    try:
        flags = CPUINFO.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_description() -> str:
    """CPU model, cores and whether bf16 is native: what decides the steps a time budget buys on this machine."""
    try:
        model = next(line.split(":", 1)[1].strip() for line in CPUINFO.read_text().splitlines() if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}"


def default_precision(device_type: str | None = None) -> str:
    """``bf16-mixed`` where the hardware computes bf16 natively (recent GPUs; CPUs with the avx512_bf16 or
    amx_bf16 flag), ``16-mixed`` on older GPUs at inference, else ``32``. ``device_type`` None: the device
    training would use."""
    on_gpu = cuda_available() if device_type is None else device_type == "cuda"
    if on_gpu:
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16-mixed"
        return "32" if device_type is None else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32"


def check_precision(name: str, on_cpu: bool, key: str = "trainer.precision") -> str:
    """``name`` as one of :data:`PRECISIONS` (``auto`` is resolved by the caller), refused where it cannot run."""
    name = str(name)
    if name not in PRECISIONS:
        raise UserError(f"{key}={name} is not one of {', '.join(PRECISIONS)}")
    if name == "16-mixed" and on_cpu:
        raise UserError(f"{key}=16-mixed needs a GPU; on a CPU use {key}=bf16-mixed or 32")
    return name


def autocast_dtype(name: str, device: torch.device, key: str = "precision") -> torch.dtype | None:
    """The autocast dtype of a precision name on ``device`` (``auto``: :func:`default_precision`); None = fp32."""
    import torch

    if str(name) == "auto":
        name = default_precision(device.type)
    dtype = PRECISIONS[check_precision(name, device.type == "cpu", key)]
    return getattr(torch, dtype) if dtype else None


def resolve_device(name: str) -> torch.device:
    """``auto`` (a GPU if one is visible), ``cpu``, ``cuda`` or ``cuda:N``, refused if absent."""
    import torch

    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not cuda_available():
        raise UserError(f"device={name} was asked for, but no CUDA GPU is visible; use device=cpu")
    return device


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU. A CPU-only wheel (version ``+cpu``) has none, which is known without torch's
    second of import, so the tasks' checks of their settings and data come first; any other wheel is asked."""
    try:
        if importlib.metadata.version("torch").endswith("+cpu"):
            return False
    except importlib.metadata.PackageNotFoundError:
        pass
    import torch

    return torch.cuda.is_available()


def runs_on_cpu(accelerator: str | None) -> bool:
    return accelerator == "cpu" or (accelerator in (None, "auto") and not cuda_available())


def default_workers() -> int:
    """Data-loading processes: none when training runs on the CPU (every core already computes the network,
    a loader process only competes with it), up to 8 beside a GPU, one core kept free."""
    if not cuda_available():
        return 0
    return max(1, min(8, (os.cpu_count() or 1) - 1))
