"""Learning-rate schedules that need the run's total number of steps (known only once the trainer is set up).

Each is a factory ``f(optimizer, total_steps, ...)`` marked with ``needs_total_steps = True``.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 50, min_factor: float = 0.01):
    """Linear warm-up, then cosine decay to ``min_factor`` of the base rate at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def poly(optimizer: Optimizer, total_steps: int, exponent: float = 0.9):
    """nnU-Net's polynomial decay: ``(1 - step / total_steps) ** exponent``."""
    return LambdaLR(optimizer, lambda step: max(0.0, 1 - step / max(1, total_steps)) ** exponent)


warmup_cosine.needs_total_steps = True
poly.needs_total_steps = True
