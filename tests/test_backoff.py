"""The restart policy with an injected clock: delays grow, reset after health, budget per window."""

from __future__ import annotations

import pytest

from supervisor.supervising.backoff import BackoffSettings, RestartPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_restart_is_fast() -> None:
    policy = RestartPolicy(BackoffSettings(multiplier=0.05, jitter=0.05), clock=FakeClock())
    delay = policy.record_failure(ran_for=100.0)
    assert delay is not None and 0.05 <= delay <= 0.1


def test_consecutive_failures_double_up_to_the_max() -> None:
    clock = FakeClock()
    policy = RestartPolicy(BackoffSettings(multiplier=0.1, jitter=0.0, max_seconds=1.0, budget=100), clock=clock)
    delays = []
    for _ in range(6):
        delays.append(policy.record_failure(ran_for=0.1))
        clock.now += 1
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_jitter_stays_within_bounds() -> None:
    settings = BackoffSettings(multiplier=1.0, jitter=0.5, budget=1000, window_seconds=1)
    policy = RestartPolicy(settings, clock=FakeClock())
    for _ in range(50):
        policy._consecutive = 0
        delay = policy.record_failure(ran_for=0.0)
        assert delay is not None and 1.0 <= delay <= 1.5


def test_a_long_healthy_run_resets_the_exponent() -> None:
    clock = FakeClock()
    policy = RestartPolicy(BackoffSettings(multiplier=0.1, jitter=0.0, reset_after_seconds=30), clock=clock)
    policy.record_failure(ran_for=0.1)
    policy.record_failure(ran_for=0.1)
    assert policy.consecutive_failures == 2
    assert policy.record_failure(ran_for=31.0) == 0.1
    assert policy.consecutive_failures == 1


def test_budget_spent_within_the_window_gives_up() -> None:
    clock = FakeClock()
    policy = RestartPolicy(BackoffSettings(budget=3, window_seconds=60), clock=clock)
    for _ in range(3):
        assert policy.record_failure(ran_for=1.0) is not None
        clock.now += 10
    assert policy.record_failure(ran_for=1.0) is None


@pytest.mark.parametrize(("later", "allowed"), [(59.0, False), (61.0, True)], ids=["inside-window", "after-window"])
def test_budget_is_per_sliding_window(later: float, allowed: bool) -> None:
    clock = FakeClock()
    policy = RestartPolicy(BackoffSettings(budget=2, window_seconds=60), clock=clock)
    policy.record_failure(ran_for=1.0)
    clock.now += later - 1.0
    policy.record_failure(ran_for=1.0)
    clock.now += 1.0
    # The first failure leaves the window only once 60 s passed since it.
    assert (policy.record_failure(ran_for=1.0) is not None) is allowed
