"""The supervisor loop and SIGHUP (a reload) racing a worker's death (no processes of ours: stubs stand in)."""

from __future__ import annotations

import os
import select
import signal
import subprocess

from supervisor.messages import Control
from supervisor.roles import Mode
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising.settings import WorkerSettings
from supervisor.supervising.state import WATCHER
from supervisor.supervising.supervisor import Supervisor, SupervisorSettings, WorkerSpec


class GoneProcess:
    """A worker that died and was already reaped by its parent (the forkserver), not yet noticed by the loop."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exitcode: int | None = None  # the forkserver's report has not arrived yet
        self.sentinel = -1


def reaped_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_sighup_racing_a_dying_watcher_does_not_crash_the_supervisor_loop() -> None:
    # Kubernetes mode: the watcher is signalled (and ignores it); standalone sends a message (below).
    spec = WorkerSpec(name="watcher", role=WATCHER, entry="x:y",
                      settings=WorkerSettings(name="watcher", node_name="n1"))  # fmt: skip
    sup = Supervisor([spec], SupervisorSettings(node_name="n1", mode=Mode.KUBERNETES),
                     metrics=MetricsRegistry(process_metrics=False))
    sup._slots[0].process = GoneProcess(reaped_pid())  # type: ignore[assignment]
    sup.request_reload()
    with sup.lock:
        sup._step()  # must not raise ProcessLookupError: the loop is what keeps every IP announced
    assert sup._reload_requested is False


class RecordingInbox:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def put(self, message: object) -> None:
        self.sent.append(message)

    def qsize(self) -> int:
        return 0


def test_standalone_sighup_goes_to_the_file_watcher_as_a_message() -> None:
    # A message wakes the watcher's wait for its inbox at once; a signal waited out its poll.
    spec = WorkerSpec(name="watcher", role=WATCHER, entry="x:y",
                      settings=WorkerSettings(name="watcher", node_name="n1"))  # fmt: skip
    sup = Supervisor([spec], SupervisorSettings(node_name="n1"), metrics=MetricsRegistry(process_metrics=False))
    inbox = RecordingInbox()
    sup._slots[0].inbox = inbox  # type: ignore[assignment]
    sup._slots[0].process = GoneProcess(reaped_pid())  # type: ignore[assignment]
    sup.request_reload()
    with sup.lock:
        sup._step()
    assert inbox.sent == [Control.RELOAD]


def test_a_signal_wakes_the_supervisor_loop() -> None:
    sup = Supervisor([], SupervisorSettings(node_name="n1"), metrics=MetricsRegistry(process_metrics=False))
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        sup.install_signal_handlers()
        assert sup._wakeup is not None
        assert select.select([sup._wakeup], [], [], 0)[0] == []
        os.kill(os.getpid(), signal.SIGHUP)
        # What the loop waits on (multiprocessing.connection.wait) includes this descriptor.
        assert select.select([sup._wakeup], [], [], 5)[0] == [sup._wakeup]
        assert sup._reload_requested
        sup._drain_wakeup()
        assert select.select([sup._wakeup], [], [], 0)[0] == []
    finally:
        signal.set_wakeup_fd(-1)
        for signum, handler in saved.items():
            signal.signal(signum, handler)
