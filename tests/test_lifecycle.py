"""The worker state machine: one test per transition, plus the events each state ignores."""

from __future__ import annotations

import pytest

from supervisor.supervising.lifecycle import (
    Event,
    Exited,
    HeartbeatSeen,
    Spawned,
    State,
    StopRequested,
    Tick,
    WorkerState,
    hung,
    restart_due,
    start_window_end,
    transition,
)

NEW = WorkerState(name="w")
STARTING = WorkerState(name="w", state=State.STARTING, pid=10, started_at=100.0)
STARTING_BEAT = WorkerState(name="w", state=State.STARTING, pid=10, started_at=100.0, last_heartbeat=100.1)
RUNNING = WorkerState(name="w", state=State.RUNNING, pid=10, started_at=100.0, last_heartbeat=101.0)
BACKOFF = WorkerState(name="w", state=State.BACKOFF, started_at=100.0, retry_at=105.0, last_error="boom")
STOPPING = WorkerState(name="w", state=State.STOPPING, pid=10, started_at=100.0)
FATAL = WorkerState(name="w", state=State.FATAL, started_at=100.0)
EXITED_AFTER_RUN = WorkerState(name="w", state=State.EXITED, started_at=100.0)


TRANSITIONS: list[tuple[str, WorkerState, Event, State]] = [
    ("exited-spawned-starting", NEW, Spawned(pid=1, at=0.0), State.STARTING),
    ("backoff-spawned-starting", BACKOFF, Spawned(pid=2, at=106.0), State.STARTING),
    ("starting-window-survived-running", STARTING_BEAT, Tick(at=100.5), State.RUNNING),
    ("starting-died-backoff", STARTING, Exited(at=100.2, exitcode=1, retry_in=0.1), State.BACKOFF),
    ("starting-died-budget-spent-fatal", STARTING, Exited(at=100.2, exitcode=1, retry_in=None), State.FATAL),
    ("running-died-backoff", RUNNING, Exited(at=200.0, exitcode=-9, retry_in=0.1), State.BACKOFF),
    ("running-died-budget-spent-fatal", RUNNING, Exited(at=200.0, exitcode=-9, retry_in=None), State.FATAL),
    ("starting-stop-stopping", STARTING, StopRequested(at=100.1), State.STOPPING),
    ("running-stop-stopping", RUNNING, StopRequested(at=200.0), State.STOPPING),
    ("backoff-stop-exited", BACKOFF, StopRequested(at=101.0), State.EXITED),
    ("stopping-exited-exited", STOPPING, Exited(at=101.0, exitcode=0), State.EXITED),
]


@pytest.mark.parametrize(("before", "event", "after"), [t[1:] for t in TRANSITIONS], ids=[t[0] for t in TRANSITIONS])
def test_transition(before: WorkerState, event: Event, after: State) -> None:
    assert transition(before, event).state is after


IGNORED: list[tuple[str, WorkerState, Event]] = [
    ("starting-tick-before-window", STARTING_BEAT, Tick(at=100.2)),
    ("starting-tick-without-heartbeat", STARTING, Tick(at=200.0)),
    ("running-spawned", RUNNING, Spawned(pid=3, at=1.0)),
    ("fatal-spawned", FATAL, Spawned(pid=3, at=1.0)),
    ("fatal-stop", FATAL, StopRequested(at=1.0)),
    ("exited-died", NEW, Exited(at=1.0, exitcode=1)),
    ("backoff-heartbeat", BACKOFF, HeartbeatSeen(at=1.0)),
    ("stopping-stop", STOPPING, StopRequested(at=1.0)),
]


@pytest.mark.parametrize(("before", "event"), [t[1:] for t in IGNORED], ids=[t[0] for t in IGNORED])
def test_event_that_makes_no_sense_changes_nothing(before: WorkerState, event: Event) -> None:
    assert transition(before, event) == before


def test_first_spawn_is_not_a_restart_but_the_next_ones_are() -> None:
    ws = transition(NEW, Spawned(pid=1, at=0.0))
    assert ws.restarts == 0
    ws = transition(ws, Exited(at=1.0, exitcode=-9, retry_in=0.1))
    ws = transition(ws, Spawned(pid=2, at=1.1))
    assert (ws.restarts, ws.pid, ws.last_heartbeat) == (1, 2, None)


def test_backoff_records_error_and_retry_time() -> None:
    ws = transition(RUNNING, Exited(at=200.0, exitcode=-9, error="hung", retry_in=0.25))
    assert (ws.last_error, ws.retry_at, ws.pid) == ("hung", 200.25, None)
    assert not restart_due(ws, 200.2)
    assert restart_due(ws, 200.25)


def test_exit_without_error_text_says_the_code() -> None:
    assert transition(RUNNING, Exited(at=1.0, exitcode=2, retry_in=0.0)).last_error == "exited with code 2"


def test_heartbeat_updates_liveness() -> None:
    assert transition(RUNNING, HeartbeatSeen(at=150.0)).last_heartbeat == 150.0


@pytest.mark.parametrize(
    ("ws", "now", "expected"),
    [
        (RUNNING, 103.9, False),
        (RUNNING, 104.1, True),
        (STARTING, 103.1, True),  # no heartbeat since spawn counts from the spawn
        (STOPPING, 1000.0, False),  # the grace period governs STOPPING
        (BACKOFF, 1000.0, False),
    ],
    ids=["running-fresh", "running-silent", "starting-silent", "stopping", "backoff"],
)
def test_hung(ws: WorkerState, now: float, expected: bool) -> None:
    assert hung(ws, now, deadline=3.0) is expected


def test_before_the_first_heartbeat_the_start_deadline_applies() -> None:
    assert not hung(STARTING, 105.0, deadline=3.0, start_deadline=10.0)
    assert hung(STARTING, 110.5, deadline=3.0, start_deadline=10.0)
    assert hung(STARTING_BEAT, 103.2, deadline=3.0, start_deadline=10.0)


def test_time_spent_waiting_for_a_cpu_is_not_silence() -> None:
    beat = transition(RUNNING, HeartbeatSeen(at=101.0, waited=7.0))
    assert beat.waited_at_heartbeat == 7.0
    # 5 s since the beat, 4 of them runnable but not running (a loaded node): 1 s of its own.
    assert not hung(beat, 106.0, deadline=3.0, waited=11.0)
    # The same 5 s asleep or computing (a deadlock, an infinite loop): hung.
    assert hung(beat, 106.0, deadline=3.0, waited=7.0)
    assert hung(beat, 106.0, deadline=3.0, waited=7.5)
    # Nothing known of the waiting (no schedstat): wall time, as before.
    assert hung(beat, 106.0, deadline=3.0, waited=None)
    assert hung(transition(RUNNING, HeartbeatSeen(at=101.0)), 106.0, deadline=3.0, waited=11.0)


@pytest.mark.parametrize(("ws", "end"), [
    (STARTING, 100.3), (STARTING_BEAT, 100.3), (RUNNING, None), (BACKOFF, None), (NEW, None), (STOPPING, None),
], ids=["starting", "starting-beat", "running", "backoff", "new", "stopping"])
def test_only_a_starting_worker_has_a_start_window_to_end(ws: WorkerState, end: float | None) -> None:
    assert start_window_end(ws) == pytest.approx(end)
    if end is not None:  # a Tick just after it promotes the worker (with a heartbeat), one before does not
        assert transition(STARTING_BEAT, Tick(at=end + 0.001)).state is State.RUNNING
        assert transition(STARTING_BEAT, Tick(at=end - 0.001)).state is State.STARTING
