"""Learning-rate schedules over the run's progress."""

import math

import pytest
import torch

from src.models.schedules import poly, warmup_cosine


@pytest.mark.parametrize("schedule", [warmup_cosine, poly])
def test_schedules_follow_progress(schedule):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    total = 100
    scheduler = schedule(optimizer, progress=lambda step: step / total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(rates) <= 1.0 and rates[-1] < 0.1 * max(rates)
    assert rates[-1] == min(rates[10:])  # decays monotonically after warm-up


def test_warm_up_is_linear_and_the_cosine_ends_at_its_floor():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_cosine(optimizer, progress=lambda step: step / 100, warmup_steps=4, min_factor=0.01)
    factor = scheduler.lr_lambdas[0]
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(50) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(100) == pytest.approx(0.01) and factor(1000) == pytest.approx(0.01)  # progress is capped at 1
