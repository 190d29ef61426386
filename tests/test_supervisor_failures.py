"""The supervisor never hangs: spawn errors back off, a broken loop exits with code 4 (stubs, no workers of ours)."""

from __future__ import annotations

import errno
import os
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from supervisor.announcing.api import AnnouncerState
from supervisor.messages import AnnouncementsChanged, AnnouncerFailed
from supervisor.roles import Mode
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising.backoff import BackoffSettings
from supervisor.supervising.lifecycle import State
from supervisor.supervising.settings import AnnouncerSettings, WorkerSettings
from supervisor.supervising.specs import announcer_spec
from supervisor.supervising.state import WATCHER
from supervisor.supervising.supervisor import (
    EXIT_SUPERVISOR_ERROR,
    EXIT_WORKER_FATAL,
    Supervisor,
    SupervisorSettings,
    WorkerSpec,
)

FAST = BackoffSettings(multiplier=0.01, jitter=0.0, max_seconds=0.05, budget=3, window_seconds=60.0)


def _supervisor() -> Supervisor:
    spec = WorkerSpec(name="watcher", role=WATCHER, entry="x:y",
                      settings=WorkerSettings(name="watcher", node_name="n1"))  # fmt: skip
    return Supervisor([spec], SupervisorSettings(node_name="n1", backoff=FAST, grace_seconds=1.0),
                      metrics=MetricsRegistry(process_metrics=False))


class NoFilesLeft:
    """A multiprocessing context at the open-file limit: every Pipe() fails with EMFILE."""

    def __init__(self) -> None:
        self.attempts = 0

    def Pipe(self, duplex: bool = True) -> Any:
        self.attempts += 1
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def _run_with_timeout(sup: Supervisor, seconds: float) -> int | None:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    return result[0] if result else None


def test_spawn_at_the_open_file_limit_backs_off_then_exits_3() -> None:
    sup = _supervisor()
    ctx = NoFilesLeft()
    sup._ctx = ctx  # type: ignore[assignment]
    assert _run_with_timeout(sup, 20) == EXIT_WORKER_FATAL, "the supervisor hung at the open-file limit"
    ws = sup.worker_states()["watcher"]
    assert ws.state is State.FATAL
    assert ws.last_error == "spawn failed: Too many open files (errno 24)"
    assert ctx.attempts == FAST.budget + 1  # the first start, then each budgeted restart
    assert sup.healthz() == (False, "worker watcher is FATAL (restart budget spent)")


def test_a_spawn_failure_is_retried_after_a_backoff_not_at_once() -> None:
    now = [100.0]
    spec = WorkerSpec(name="watcher", role=WATCHER, entry="x:y",
                      settings=WorkerSettings(name="watcher", node_name="n1"))  # fmt: skip
    sup = Supervisor([spec], SupervisorSettings(node_name="n1", backoff=FAST),
                     metrics=MetricsRegistry(process_metrics=False), clock=lambda: now[0])
    ctx = NoFilesLeft()
    sup._ctx = ctx  # type: ignore[assignment]
    with sup.lock:
        sup._spawn(sup._slots[0])
    ws = sup._slots[0].ws
    assert ws.state is State.BACKOFF and ws.retry_at is not None and ws.retry_at > now[0]
    with sup.lock:
        sup._step()
    assert ctx.attempts == 1  # not retried in a tight loop
    now[0] = ws.retry_at
    with sup.lock:
        sup._step()
    assert ctx.attempts == 2


class StubProcess:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self.sentinel = self._read
        self.pid = 999_999
        self.exitcode: int | None = None
        self.killed = False

    def kill(self) -> None:
        self.killed = True

    def join(self, timeout: float | None = None) -> None:
        pass


def test_an_unexpected_error_in_the_loop_kills_the_workers_and_exits_4(caplog: pytest.LogCaptureFixture) -> None:
    sup = _supervisor()
    stub = StubProcess()
    try:
        def spawn(slot: Any) -> None:
            slot.process = stub

        def broken_step() -> None:
            raise RuntimeError("routing table exploded")

        sup._spawn = spawn  # type: ignore[method-assign]
        sup._step = broken_step  # type: ignore[method-assign]
        started = time.monotonic()
        assert _run_with_timeout(sup, 10) == EXIT_SUPERVISOR_ERROR
        assert time.monotonic() - started < 5
        assert stub.killed
        [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("supervisor.crashed code=4")]
        assert "RuntimeError: routing table exploded" in line
        assert not any(r.exc_info for r in caplog.records if r.levelname != "DEBUG")
    finally:
        os.close(stub._read)
        os.close(stub._write)


def test_probes_do_not_wait_for_the_lock() -> None:
    sup = _supervisor()
    sup._publish_probes()
    with sup.lock:  # a /status being built, or a loop turn, holds it
        answers: list[tuple[bool, str]] = []
        thread = threading.Thread(target=lambda: answers.extend([sup.healthz(), sup.readyz()]), daemon=True)
        thread.start()
        thread.join(timeout=2)
        assert len(answers) == 2, "a probe waited behind the supervisor lock"
    assert answers[0] == (True, "ok") and answers[1][0] is False


class ExitedProcess:
    """An announcer process that has exited with `exitcode` (a crash of the last restart the budget allowed)."""

    pid = 4242
    sentinel = -1

    def __init__(self, exitcode: int) -> None:
        self.exitcode = exitcode

    def join(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class AliveProcess:
    pid = 4141
    sentinel = -1
    exitcode = None


class RecordingInbox:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def put(self, message: object) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass

    def qsize(self) -> int:
        return 0


@pytest.mark.parametrize("mode", [Mode.KUBERNETES, Mode.STANDALONE])
def test_an_announcer_out_of_budget_is_failed_and_tells_the_watcher_while_the_run_goes_on(mode: Mode) -> None:
    """Issue 13: the speaker's watcher writes the AnnouncerFailed Event from what this step sends it."""
    watcher = WorkerSpec(name="watcher", role=WATCHER, entry="x:y",
                         settings=WorkerSettings(name="watcher", node_name="n1"))  # fmt: skip
    template = AnnouncerSettings(name="announcer", node_name="n1", mode=mode)
    announcer = announcer_spec(template, None, "example")
    sup = Supervisor([watcher, announcer],
                     SupervisorSettings(node_name="n1", mode=mode, backoff=replace(FAST, budget=0),
                                        grace_seconds=1.0),
                     metrics=MetricsRegistry(process_metrics=False))
    watcher_slot, announcer_slot = sup._slots
    inbox = RecordingInbox()
    watcher_slot.inbox, watcher_slot.process = inbox, AliveProcess()  # type: ignore[assignment]
    now = sup._clock()
    watcher_slot.ws = replace(watcher_slot.ws, state=State.RUNNING, pid=4141, started_at=now, last_heartbeat=now)
    announcer_slot.process = ExitedProcess(1)  # type: ignore[assignment]
    announcer_slot.ws = replace(announcer_slot.ws, state=State.RUNNING, pid=4242, started_at=now, last_heartbeat=now)
    with sup.lock:
        sup._step()
    assert sup.worker_states()["announcer-example"].state is State.FATAL
    assert sup._stopping is None  # an announcer's failure does not end the run
    assert AnnouncerFailed(protocol="example", error="exited with code 1") in inbox.sent
    nothing = AnnouncementsChanged(worker="announcer-example", state=AnnouncerState(protocol="example"))
    assert (nothing in inbox.sent) is (mode == Mode.KUBERNETES)
    assert 'metalloid_announcer_failed{announcer="example"} 1' in sup.metrics.render()[0].decode().splitlines()
