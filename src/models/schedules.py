"""Learning-rate schedules over the run's progress, a number from 0 to 1 known only once training starts.

Each is a factory ``f(optimizer, progress, ...)`` where ``progress(step)`` is the fraction of the run done:
``step / total_steps``, or, when the trainer has ``max_time``, the larger of that and the fraction of the
time budget used, so the schedule completes within a time budget on any machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

Progress = Callable[[int], float]


def warmup_cosine(optimizer: Optimizer, progress: Progress, warmup_steps: int = 50, min_factor: float = 0.01):
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_factor`` of the base rate."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress(step))))

    return LambdaLR(optimizer, factor)


def poly(optimizer: Optimizer, progress: Progress, exponent: float = 0.9):
    """nnU-Net's polynomial decay: ``(1 - progress) ** exponent``."""
    return LambdaLR(optimizer, lambda step: max(0.0, 1 - progress(step)) ** exponent)
