"""FAILED and hanging announcers in /status and /readyz; which announcers run and why. Pure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from supervisor.allocating.results import AllocationResult
from supervisor.announcing.enabling import Decision
from supervisor.commands.status import render_tables
from supervisor.config.model import Config
from supervisor.messages import AllocationDone, ConfigLoaded
from supervisor.supervising import lifecycle
from supervisor.supervising.lifecycle import State, WorkerState
from supervisor.supervising.state import RoutedState
from supervisor.supervising.status import announcer_rows, build_status, readiness

RUNNING = WorkerState(name="announcer-layer2", state=State.RUNNING, pid=10, started_at=0.0, last_heartbeat=99.8)
FAILED = WorkerState(name="announcer-example", state=State.FATAL, last_error="exited with code 1", restarts=10)
LAYER2 = Decision(protocol="layer2", enabled=True, reason="default: the config has L2Advertisements")
EXAMPLE = Decision(protocol="example", enabled=True, reason="enabled by AnnouncerConfig/example at c.yaml:9")
BGP = Decision(protocol="bgp", enabled=False,
               reason="disabled by AnnouncerConfig/bgp at c.yaml:20 (spec.enabled: false)")


def loaded_state() -> RoutedState:
    done = AllocationDone(generation=1, result=AllocationResult(assignments={}, pending={}, pools=()))
    return RoutedState(node_name="n1", loaded=ConfigLoaded(generation=1, config=Config(), origin="t"),
                       allocation=done, allocated_config=Config(),
                       statuses={"announcer-layer2": {"announcements": [], "sockets_ready": True}})


def test_rows_say_what_runs_why_and_how() -> None:
    rows = announcer_rows([LAYER2, EXAMPLE, BGP],
                          {"layer2": (RUNNING, 3.0), "example": (FAILED, 10.0)},
                          loaded_state().statuses, now=100.0)
    assert rows == [
        {"protocol": "bgp", "enabled": False, "reason": BGP.reason, "worker": None, "state": "STOPPED",
         "ready": False, "hang_timeout_seconds": None, "last_error": None},
        {"protocol": "example", "enabled": True, "reason": EXAMPLE.reason, "worker": "announcer-example",
         "state": "FAILED", "ready": False, "hang_timeout_seconds": 10.0, "last_error": "exited with code 1"},
        {"protocol": "layer2", "enabled": True, "reason": LAYER2.reason, "worker": "announcer-layer2",
         "state": "RUNNING", "ready": True, "hang_timeout_seconds": 3.0, "last_error": None},
    ]
    table = render_tables({"node": "n1", "config": {}, "announcers": rows})
    assert "example    FAILED (exited with code 1)   no      10s" in table
    assert "bgp        DISABLED" in table and "default: the config has L2Advertisements" in table


@pytest.mark.parametrize(("heard_at", "deadline", "state"), [
    (99.0, 3.0, "RUNNING"),          # 1 s: a heartbeat or two late under load is not a hang
    (98.0, 3.0, "NOT-RESPONDING"),   # 2 s of a 3 s deadline
    (95.0, 30.0, "RUNNING"),         # a plugin given 30 s is judged against half of that
    (80.0, 30.0, "NOT-RESPONDING"),
])
def test_a_silent_announcer_is_not_responding_before_it_is_killed(heard_at: float, deadline: float,
                                                                  state: str) -> None:
    ws = replace(RUNNING, last_heartbeat=heard_at)
    [row] = announcer_rows([LAYER2], {"layer2": (ws, deadline)}, loaded_state().statuses, now=100.0)
    assert row["state"] == state and row["ready"] is (state == "RUNNING")
    ready, why = readiness(loaded_state(), [ws], ["announcer-layer2"], now=100.0,
                           hang_deadlines={"announcer-layer2": deadline})
    assert ready is (state == "RUNNING")
    if not ready:
        assert why.startswith("announcer announcer-layer2 is not responding (no heartbeat for")


def test_a_failed_announcer_makes_readyz_say_so() -> None:
    state = loaded_state()
    ready, why = readiness(state, [RUNNING, FAILED], ["announcer-layer2", "announcer-example"], now=100.0,
                           hang_deadlines={"announcer-layer2": 3.0, "announcer-example": 3.0})
    assert (ready, why) == (False, "announcer announcer-example FAILED (restart budget spent): exited with code 1")
    assert readiness(state, [RUNNING], ["announcer-layer2"], now=100.0) == (True, "ok")


def test_plugin_errors_are_collected_once() -> None:
    state = loaded_state()
    failure = {"plugin": "typo", "value": "x", "hook": "metalloid_x", "reason": "unknown hook metalloid_x"}
    state.statuses = {"announcer-a": {"announcements": [], "_host": {"load_failures": [failure], "status_errors": []}},
                      "announcer-b": {"announcements": [], "_host": {"load_failures": [failure],
                                                                      "status_errors": ["has no list"]}}}
    document = build_status(state, [], now=0.0, version="t", protocols={"announcer-a": "a", "announcer-b": "b"})
    assert document["plugin_errors"] == [failure, {"plugin": "b", "hook": None, "reason": "status(): has no list"}]
    assert "plugin error: typo hook metalloid_x: unknown hook metalloid_x" in render_tables(document)


def test_revived_gives_a_failed_worker_a_fresh_start() -> None:
    ws = lifecycle.transition(FAILED, lifecycle.Revived(at=5.0))
    assert ws.state is State.EXITED and ws.last_error == "exited with code 1"
    assert lifecycle.transition(ws, lifecycle.Spawned(pid=7, at=6.0)).state is State.STARTING
    assert lifecycle.transition(RUNNING, lifecycle.Revived(at=5.0)) == RUNNING


@pytest.mark.parametrize(("payload", "ready", "why"), [
    ({"announcements": [], "sockets_ready": False}, False, "announcer announcer-layer2 does not hold its sockets yet"),
    ({"announcements": [], "sockets_ready": True}, True, "ok"),
    ({"announcements": []}, True, "ok"),  # absent = ready (docs/plugins.md, "Status and readiness")
])
def test_sockets_ready_is_what_readyz_and_the_ready_column_follow(payload: dict[str, object], ready: bool,
                                                                   why: str) -> None:
    state = loaded_state()
    state.statuses = {"announcer-layer2": payload}
    assert readiness(state, [RUNNING], ["announcer-layer2"], now=100.0,
                     hang_deadlines={"announcer-layer2": 3.0}) == (ready, why)
    [row] = announcer_rows([LAYER2], {"layer2": (RUNNING, 3.0)}, state.statuses, now=100.0)
    assert row["ready"] is ready


@pytest.mark.parametrize(("waited_since_heartbeat", "state"), [
    (0.0, "NOT-RESPONDING"),  # 2 s silent, none of it waiting for a CPU: its own loop is stuck
    (0.8, "RUNNING"),  # 2 s silent, 0.8 s of it runnable but not run: 1.2 s of its own, not late
    (0.4, "NOT-RESPONDING"),  # 1.6 s of its own: late
    (None, "NOT-RESPONDING"),  # the wait is unknown (no /proc): wall time, as before
])
def test_time_spent_waiting_for_a_cpu_is_not_silence(waited_since_heartbeat: float | None, state: str) -> None:
    """As the hang killer judges (lifecycle.hung): slow because the node is loaded is not hanging."""
    ws = replace(RUNNING, last_heartbeat=98.0, waited_at_heartbeat=5.0)

    def waits(pid: int) -> float | None:
        assert pid == ws.pid
        return None if waited_since_heartbeat is None else 5.0 + waited_since_heartbeat

    [row] = announcer_rows([LAYER2], {"layer2": (ws, 3.0)}, loaded_state().statuses, now=100.0, waits=waits)
    assert row["state"] == state
    ready, _ = readiness(loaded_state(), [ws], ["announcer-layer2"], now=100.0,
                         hang_deadlines={"announcer-layer2": 3.0}, waits=waits)
    assert ready is (state == "RUNNING")
