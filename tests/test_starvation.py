"""The kernel's run-queue wait, as the supervisor reads it for its hang deadline (starvation.py):
it grows while a process is runnable on a busy CPU, and not while it sleeps."""

from __future__ import annotations

import os
import signal
import time

from supervisor.supervising.child import die_with_parent
from supervisor.supervising.starvation import run_queue_wait


def _forked(body: str) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest, and dies with it
        try:
            die_with_parent(parent)
            if body == "sleep":
                time.sleep(60)
            else:
                core = min(os.sched_getaffinity(0))
                os.sched_setaffinity(0, {core})
                while True:
                    pass
        finally:
            os._exit(0)
    return pid


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def _stop(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_process_sharing_a_busy_cpu_waits_on_the_run_queue_and_a_sleeping_one_does_not() -> None:
    busy = [_forked("spin") for _ in range(4)]  # all on the same core
    sleeper = _forked("sleep")
    try:
        # From when the sleeper is asleep: until then (fork, imports) it is runnable too.
        deadline = time.monotonic() + 10
        while _state(sleeper) != "S" and time.monotonic() < deadline:
            time.sleep(0.01)
        before = {pid: run_queue_wait(pid) for pid in [*busy, sleeper]}
        time.sleep(1.0)
        after = {pid: run_queue_wait(pid) for pid in [*busy, sleeper]}
    finally:
        _stop([*busy, sleeper])
    waited = {pid: after[pid] - before[pid] for pid in before}  # type: ignore[operator]
    # Four busy processes on one core: each runs a quarter of the time and waits the rest.
    assert all(waited[pid] > 0.3 for pid in busy), waited
    # Asleep, it is never runnable: nothing on its run queue, however loaded the machine.
    assert waited[sleeper] < 0.02, waited


def test_an_unknown_process_has_no_wait() -> None:
    pid = _forked("sleep")
    _stop([pid])
    assert run_queue_wait(pid) is None
