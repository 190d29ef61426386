"""The supervisor loop and SIGHUP (a reload) racing a worker's death (no processes of ours: stubs stand in)."""

from __future__ import annotations

import subprocess

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
    spec = WorkerSpec(name="watcher", role=WATCHER, entry="x:y",
                      settings=WorkerSettings(name="watcher", node_name="n1"))  # fmt: skip
    sup = Supervisor([spec], SupervisorSettings(node_name="n1"), metrics=MetricsRegistry(process_metrics=False))
    sup._slots[0].process = GoneProcess(reaped_pid())  # type: ignore[assignment]
    sup.request_reload()
    with sup.lock:
        sup._step()  # must not raise ProcessLookupError: the loop is what keeps every IP announced
    assert sup._reload_requested is False
