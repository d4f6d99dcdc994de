"""Learning-rate schedules over the run's progress."""

import math

import pytest
import torch

from src.models.schedules import CLOCK_ALLOWANCE, poly, run_progress, warmup_cosine


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


def test_a_run_whose_steps_fit_its_budget_follows_its_steps_whatever_its_start_up():
    # 1500 steps at 0.3 s each after start-ups of 0 and 25 s: both within a 10-minute budget
    for start_up in (0.0, 25.0):
        done = [run_progress(s, 1500, start_up + 0.3 * s, 600.0) for s in range(1501)]
        assert done == [run_progress(s, 1500) for s in range(1501)] == [s / 1500 for s in range(1501)]


def test_a_run_too_slow_for_its_budget_is_led_by_the_clock_and_ends_with_it():
    pace, budget = 0.6, 600.0  # 1500 steps would need 900 s
    steps = range(int(budget / pace) + 1)
    done = [run_progress(s, 1500, pace * s, budget) for s in steps]
    assert done[-1] == 1.0  # the schedule is complete when the clock stops the run at step 1000
    assert done == sorted(done)  # never back
    assert done[100] == 100 / 1500  # the clock leads only once past its allowance of the budget
    assert done[500] == pytest.approx((500 * pace / budget - CLOCK_ALLOWANCE) / (1 - CLOCK_ALLOWANCE))
    assert done[500] > 500 / 1500


def test_progress_is_capped_at_both_ends():
    assert run_progress(0, 0) == 0.0 and run_progress(3000, 1500) == 1.0
    assert run_progress(10, 1500, elapsed_s=900.0, budget_s=600.0) == 1.0


@pytest.mark.parametrize(
    ("schedule", "settings", "words"),
    [
        (warmup_cosine, {"min_factor": -0.5}, "min_factor=-0.5 from 0 to 1"),
        (warmup_cosine, {"min_factor": 2.0}, "min_factor=2.0 from 0 to 1"),
        (warmup_cosine, {"warmup_steps": -5}, "warmup_steps=-5 must be 0 or more"),
        (poly, {"exponent": -1.0}, "exponent=-1.0 must be 0 or more"),
    ],
)
def test_a_schedule_that_would_turn_the_rate_negative_or_unbounded_is_refused(schedule, settings, words):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=words):
        schedule(optimizer, lambda step: 0.0, **settings)
