"""What every worker process does before and around its own loop.

`child_main` is the target the supervisor hands to `multiprocessing`
(forkserver): it ties the child's life to the supervisor (see
`die_with_parent`, so a SIGKILLed supervisor leaves no orphan), wraps its two
pipes (`channels`), sets up logging with the worker's name, imports the
worker's module by name (the forkserver holds only the shared modules of
`preload`, never the supervisor's state) and runs `run(settings, inbox, outbox)`. An exception
escaping the worker is reported as `WorkerFailed` and the process exits 1, so
the supervisor restarts it.

`serve` is the loop most workers share: take a message, hand it to the core,
put the results, send a heartbeat every `heartbeat_seconds`, optionally call a
timer. It works with `queue.Queue` too, which is how tests drive workers in
threads.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from supervisor.logs import setup_logging
from supervisor.messages import (
    AllocationDone,
    ConfigLoaded,
    Control,
    FromWorker,
    ToWorker,
    ViewChanged,
    WorkerFailed,
    WorkerHeartbeat,
)
from supervisor.supervising.channels import WorkerInbox, WorkerOutbox
from supervisor.supervising.memory import release_memory
from supervisor.supervising.settings import WorkerSettings

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class Inbox(Protocol):
    def get(self, block: bool = ..., timeout: float | None = ...) -> Any: ...


class Outbox(Protocol):
    def put(self, obj: Any, block: bool = ..., timeout: float | None = ...) -> None: ...


def die_with_parent(supervisor_pid: int) -> None:
    """Ask the kernel to SIGKILL us when our parent dies; exit if it, or the supervisor, already has.

    Our parent is the forkserver, not the supervisor. The forkserver exits the
    moment the supervisor dies (it reads EOF on its "alive" pipe, whose only
    writer is the supervisor), so its death signal is the supervisor's, one
    hop later. With spawn the parent is the supervisor itself; both work.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    # Either may have died between our fork and the prctl: the signal would
    # then never come, so check by hand once.
    if os.getppid() != parent or not _alive(supervisor_pid):
        os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - alive, another user's
        return True
    return True


def child_main(entry: str, settings: WorkerSettings, inbox_conn: Connection, outbox_conn: Connection,
               parent_pid: int) -> None:
    """Process target: `entry` is "package.module:function" taking (settings, inbox, outbox)."""
    die_with_parent(parent_pid)
    inbox, outbox = WorkerInbox(inbox_conn), WorkerOutbox(outbox_conn)
    # Ctrl-C in a terminal, systemd's default KillMode=control-group and
    # `timeout` signal every process of the group at once; the supervisor
    # decides the order (announcers hand over first) and SIGKILLs whatever
    # outlives the grace period, so workers ignore both.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _setup_logging(settings)
    module_name, _, func_name = entry.partition(":")
    try:
        run = getattr(importlib.import_module(module_name), func_name)
        run(settings, inbox, outbox)
    except Exception as exc:
        log.exception("worker.failed worker=%s error=%s", settings.name, exc)
        outbox.put(WorkerFailed(worker=settings.name, error=f"{type(exc).__name__}: {exc}"))
        sys.exit(1)


def _setup_logging(settings: WorkerSettings) -> None:
    setup_logging(settings.name, fmt=settings.log_format, level=settings.log_level)


class Heartbeat:
    """Sends WorkerHeartbeat at most every `interval` seconds."""

    def __init__(self, worker: str, outbox: Outbox, interval: float, clock: Callable[[], float] = time.monotonic):
        self._worker = worker
        self._outbox = outbox
        self._interval = interval
        self._clock = clock
        self._last = float("-inf")

    def due_in(self, now: float) -> float:
        return max(0.0, self._last + self._interval - now)

    def maybe(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        if now - self._last >= self._interval:
            self._outbox.put(WorkerHeartbeat(worker=self._worker, pid=os.getpid(), at=now))
            self._last = now


def receive(inbox: Inbox, timeout: float) -> ToWorker | None:
    try:
        message: ToWorker = inbox.get(timeout=max(0.0, timeout))
    except queue.Empty:
        return None
    return message


# Messages after which the previous config, allocation or view is garbage:
# a few MiB with 1,000 Services, held as resident memory unless handed back.
_REPLACES_EVERYTHING = (ConfigLoaded, AllocationDone, ViewChanged)


def serve(
    settings: WorkerSettings,
    inbox: Inbox,
    outbox: Outbox,
    handle: Callable[[ToWorker], Iterable[FromWorker]],
    *,
    tick: Callable[[float], Iterable[FromWorker]] | None = None,
    tick_seconds: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run a worker loop until Control.STOP arrives (then return); `tick` is called every `tick_seconds`."""
    beat = Heartbeat(settings.name, outbox, settings.heartbeat_seconds, clock)
    beat.maybe()
    period = tick_seconds
    next_tick = clock()
    while True:
        now = clock()
        timeout = beat.due_in(now)
        if tick is not None:
            timeout = min(timeout, max(0.0, next_tick - now))
        message = receive(inbox, timeout)
        if message is Control.STOP:
            return
        if message is not None:
            for out in handle(message):
                outbox.put(out)
            if isinstance(message, _REPLACES_EVERYTHING):
                release_memory()
        now = clock()
        if tick is not None and now >= next_tick:
            for out in tick(now):
                outbox.put(out)
            next_tick = now + period
        beat.maybe(now)
