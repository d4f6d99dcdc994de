"""Learning-rate schedules over the run's progress, a number from 0 to 1 known only once training starts.

Each is a factory ``f(optimizer, progress, ...)`` where ``progress(step)`` is the fraction of the run done
(:func:`run_progress`): by steps, unless under a time budget the clock runs ahead of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

Progress = Callable[[int], float]

CLOCK_ALLOWANCE = 0.05
"""Share of a time budget the clock may run ahead of the steps (a run's start-up: loaders, first batches) before
it leads the schedule; a run whose steps fit its budget then follows its steps alone, so one seed repeats."""


def run_progress(step: int, total_steps: int, elapsed_s: float = 0.0, budget_s: float | None = None) -> float:
    """Fraction of the run done at optimizer ``step``, from 0 to 1.

    Without a budget: ``step / total_steps``. Under ``budget_s`` seconds: the larger of that and the budget's
    fraction used beyond :data:`CLOCK_ALLOWANCE`, rescaled to end at 1 with the budget. The clock thus leads only
    on a machine too slow for the steps to fit, and the schedule still ends within the budget there; where they
    fit, the learning rates do not depend on the machine's speed.
    """
    done = step / max(1, total_steps)
    if budget_s:
        used = elapsed_s / budget_s
        done = max(done, (used - CLOCK_ALLOWANCE) / (1 - CLOCK_ALLOWANCE))
    return min(1.0, max(0.0, done))


def warmup_cosine(optimizer: Optimizer, progress: Progress, warmup_steps: int = 50, min_factor: float = 0.01):
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_factor`` of the base rate."""
    if warmup_steps < 0 or not 0 <= min_factor <= 1:
        raise ValueError(f"warmup_steps={warmup_steps} must be 0 or more and min_factor={min_factor} from 0 to 1")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress(step))))

    return LambdaLR(optimizer, factor)


def poly(optimizer: Optimizer, progress: Progress, exponent: float = 0.9):
    """nnU-Net's polynomial decay: ``(1 - progress) ** exponent``."""
    if exponent < 0:  # the rate would grow without bound at the end
        raise ValueError(f"exponent={exponent} must be 0 or more")
    return LambdaLR(optimizer, lambda step: max(0.0, 1 - progress(step)) ** exponent)
