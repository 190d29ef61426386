"""The loop's wait: at most LOOP_SECONDS, and no longer than until the next start window ends.

At start every worker's start window, not the config, is what a node waits for
last (BENCHMARKS.md, issue 16's fourth session): the loop wakes when one ends,
so the worker is seen RUNNING then, not at the next 50 ms tick.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising.lifecycle import State
from supervisor.supervising.settings import WorkerSettings
from supervisor.supervising.state import ALLOCATOR, WATCHER
from supervisor.supervising.supervisor import LOOP_SECONDS, Supervisor, SupervisorSettings, WorkerSpec


def _supervisor() -> Supervisor:
    specs = [WorkerSpec(name=name, role=role, entry="x:y", settings=WorkerSettings(name=name, node_name="n1"))
             for name, role in (("watcher", WATCHER), ("allocator", ALLOCATOR))]
    return Supervisor(specs, SupervisorSettings(node_name="n1"), metrics=MetricsRegistry(process_metrics=False))


def _starting(sup: Supervisor, name: str, at: float) -> None:
    slot = next(s for s in sup._slots if s.spec.name == name)
    slot.ws = replace(slot.ws, state=State.STARTING, pid=1, started_at=at, start_seconds=0.3)


def test_without_a_start_window_the_loop_waits_its_usual_tick() -> None:
    assert _supervisor()._wait_seconds(100.0) == LOOP_SECONDS


@pytest.mark.parametrize(("now", "wait"), [
    (100.0, LOOP_SECONDS),   # the window ends in 0.3 s: the tick comes first
    (100.28, 0.02),          # it ends before the next tick: wake then
    (100.3, LOOP_SECONDS),   # over (this step promotes it): not a wait of 0, which would spin
    (100.31, LOOP_SECONDS),  # over, waiting for its first heartbeat, which wakes the loop by itself
], ids=["window-far", "window-first", "window-now", "window-over"])
def test_the_loop_wakes_when_a_start_window_ends(now: float, wait: float) -> None:
    sup = _supervisor()
    _starting(sup, "watcher", 100.0)
    assert sup._wait_seconds(now) == pytest.approx(wait)


def test_the_earliest_window_decides() -> None:
    sup = _supervisor()
    _starting(sup, "watcher", 100.0)
    _starting(sup, "allocator", 99.99)
    assert sup._wait_seconds(100.27) == pytest.approx(0.02)
