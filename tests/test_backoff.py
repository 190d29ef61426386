"""The restart policy with an injected clock: delays grow, reset after health, budget per window."""

from __future__ import annotations

import logging

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


def crash_every(policy: RestartPolicy, clock: FakeClock, *, ran_for: float, times: int) -> list[float | None]:
    """The worker runs `ran_for` seconds, dies, waits its delay, and again."""
    delays = []
    for _ in range(times):
        clock.now += ran_for
        delay = policy.record_failure(ran_for=ran_for)
        delays.append(delay)
        clock.now += delay or 0.0
    return delays


def test_crashing_just_under_reset_after_flaps_visibly_but_never_exits(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    policy = RestartPolicy(BackoffSettings(jitter=0.0), clock=clock, name="announcer-layer2")
    with caplog.at_level(logging.WARNING, logger="supervisor.supervising.backoff"):
        first = crash_every(policy, clock, ran_for=29.0, times=9)
        assert policy.restarts_in_flapping_window() == 9, "nine restarts in ten minutes is not flapping yet"
        assert not [r for r in caplog.records if "worker.flapping" in r.getMessage()]
        later = crash_every(policy, clock, ran_for=29.0, times=40)  # ~26 minutes more of the same
    assert None not in first + later, "the budget decides exit, and it never trips here"
    assert policy.flapping and policy.restarts_in_flapping_window() >= 10
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("worker.flapping")]
    assert warned and warned[0].startswith("worker.flapping worker=announcer-layer2 restarts=10 ")


@pytest.mark.parametrize(
    ("ran_for", "flapping"),
    [pytest.param(29.0, True, id="every-39s"), pytest.param(120.0, False, id="every-2min")],
)
def test_flapping_counts_restarts_in_ten_minutes(ran_for: float, flapping: bool) -> None:
    clock = FakeClock()
    policy = RestartPolicy(BackoffSettings(jitter=0.0), clock=clock)
    crash_every(policy, clock, ran_for=ran_for, times=30)
    assert policy.flapping is flapping


def test_flapping_ends_when_the_worker_stays_up() -> None:
    clock = FakeClock()
    policy = RestartPolicy(BackoffSettings(jitter=0.0), clock=clock)
    crash_every(policy, clock, ran_for=29.0, times=12)
    assert policy.flapping
    clock.now += 601.0
    assert not policy.flapping
