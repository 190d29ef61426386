"""The supervisor process: spawn workers, route their messages, restart them, stop them.

The loop waits with `multiprocessing.connection.wait()` on every worker's
`Process.sentinel` (death) and its outbox reader (messages), with a 50 ms
timeout for timers. The jobs are in parts, one concept each: `spawning` (the
process table), `dispatching` (messages), `failing` (exits, FAILED
announcers), `reloading` (SIGHUP, announcers following the config), `probing`
(/status, /healthz, /readyz); `shell` declares the state they share.
Everything that decides is elsewhere and pure: `lifecycle` (states),
`backoff` (delays and budget), `state` and `routing` (what to route and
replay), `stopping` (the shutdown's phases), `status` (the /status document).

Signals: SIGTERM/SIGINT stop gracefully (announcers first, so they hand over,
then the rest; SIGKILL for whatever outlives the grace period; exit 0).
SIGHUP is forwarded to the watcher (reload now). A core worker whose restart
budget is spent stops the run with exit code 3 (EXIT_WORKER_FATAL). Any other
unexpected error in the loop kills the workers and ends the run with exit
code 4 (EXIT_SUPERVISOR_ERROR), one log line saying why: a supervisor that
can no longer supervise must not linger half alive (non-daemon children would
keep it from exiting), it must exit so systemd or the kubelet starts a fresh
one.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from supervisor.announcing.enabling import Decision
from supervisor.messages import Control
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising import lifecycle, stopping
from supervisor.supervising.dispatching import Dispatching
from supervisor.supervising.failing import ANNOUNCER_FAILED, ANNOUNCER_FAILED_HELP, Failing
from supervisor.supervising.forkserver import PRELOAD, START_METHOD, _without_resource_tracker, stop_forkserver
from supervisor.supervising.lifecycle import State
from supervisor.supervising.memory import HeapTrimmer, release_memory
from supervisor.supervising.probing import Probing
from supervisor.supervising.reloading import Reloading
from supervisor.supervising.rendering import StatusRenderer
from supervisor.supervising.shell import EXIT_OK, EXIT_SUPERVISOR_ERROR, EXIT_WORKER_FATAL, Slot
from supervisor.supervising.spawning import CHILD_MAIN, SPAWN_FDS, Spawning
from supervisor.supervising.specs import SupervisorSettings, WorkerSpec, announcer_spec
from supervisor.supervising.state import ANNOUNCER, MEMBERSHIP, RoutedState

__all__ = ["ANNOUNCER_FAILED", "ANNOUNCER_FAILED_HELP", "CHILD_MAIN", "EXIT_OK", "EXIT_SUPERVISOR_ERROR",
           "EXIT_WORKER_FATAL", "LOOP_SECONDS", "PRELOAD", "SPAWN_FDS", "START_METHOD", "Supervisor",
           "SupervisorSettings", "WorkerSpec", "announcer_spec"]

log = logging.getLogger(__name__)

# The loop's timer resolution: hung checks and backoff retries are judged at
# this granularity. Start windows are not: the loop also wakes when one ends
# (`_wait_seconds`).
LOOP_SECONDS = 0.05


class Supervisor(Probing, Spawning, Dispatching, Failing, Reloading):
    def __init__(
        self,
        specs: list[WorkerSpec],
        settings: SupervisorSettings,
        *,
        metrics: MetricsRegistry,
        clock: Callable[[], float] = time.monotonic,
        decisions: tuple[Decision, ...] = (),
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._clock = clock
        self._ctx = multiprocessing.get_context(START_METHOD)
        self._ctx.set_forkserver_preload(PRELOAD)
        self._slots = [Slot(spec, settings, clock) for spec in specs]
        self.state = RoutedState(node_name=settings.node_name, mode=settings.mode)
        self.lock = threading.Lock()
        self._stop_requested = False
        self._reload_requested = False
        self._wakeup: int | None = None  # signals' wake-up pipe (install_signal_handlers)
        self._stopping: stopping.Stopping | None = None
        self._exit_code: int | None = None
        self._pool_names: set[str] = set()
        self._last_loop = clock()
        self._ready = False
        # Why each announcer runs or not, for /status; without a template, the specs given.
        self._decisions = {d.protocol: d for d in decisions} or {
            s.spec.protocol: Decision(protocol=s.spec.protocol,
                                                              enabled=True, reason="given at start")
            for s in self._slots if s.spec.role == ANNOUNCER}
        # Published by the loop for the lock-free probes (each swapped whole).
        self._published_readiness: tuple[bool, str] = (False, "starting")
        self._renderer = StatusRenderer()
        self._render_lock = threading.Lock()
        self._render_wanted = threading.Event()
        self._rendered = None
        self._ahead = None
        self._ahead_wanted = False
        self._ahead_lock = threading.Lock()
        self._ahead_stop = threading.Event()
        self._published_fatal: str | None = None
        self._trimmer = HeapTrimmer()
        self._publish_status()

    def install_signal_handlers(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stop_requested = True

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self._reload_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        # A signal wakes the loop's wait at once; without this the wait is
        # resumed after the handler (PEP 475) and a SIGHUP or SIGTERM waited
        # for up to LOOP_SECONDS before the loop looked at it.
        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._wakeup = read

    # -- the loop ------------------------------------------------------------

    def run(self) -> int:
        _without_resource_tracker()
        try:
            self._publish_probes()
            for slot in self._slots:
                if not slot.spec.needs_peers:
                    self._spawn(slot)
            # What the start-up left (the check's answer; the parse, now in the
            # watcher's inbox) back to the kernel: after the spawns, so their
            # start windows do not wait for it.
            release_memory()
            while self._exit_code is None:
                handles: list[Any] = []
                for slot in self._slots:
                    if slot.process is not None:
                        handles.append(slot.process.sentinel)
                    if slot.outbox is not None:
                        handles.append(slot.outbox)
                if self._wakeup is not None:
                    handles.append(self._wakeup)
                multiprocessing.connection.wait(handles, timeout=self._wait_seconds(self._clock()))
                self._drain_wakeup()
                with self.lock:
                    self._step()
        except Exception as exc:
            self._crashed(exc)
            return EXIT_SUPERVISOR_ERROR
        stop_forkserver()
        log.info("supervisor.exited code=%d", self._exit_code)
        return self._exit_code

    def _wait_seconds(self, now: float) -> float:
        """How long the loop may wait for a message: LOOP_SECONDS, or until the next start window ends.

        A worker becomes RUNNING (and the node ready) at the first step after
        its window; at the 50 ms resolution that step came up to 50 ms late,
        and at start every worker's window, not the config, is what the node
        waits for last (BENCHMARKS.md, issue 16's fourth session). A window
        already over is not waited for: the worker's first heartbeat, the
        other condition, wakes the loop by itself.
        """
        ends = [end for s in self._slots if (end := lifecycle.start_window_end(s.ws)) is not None and end > now]
        return min([LOOP_SECONDS, *(end - now for end in ends)])

    def _drain_wakeup(self) -> None:
        if self._wakeup is None:
            return
        try:
            while os.read(self._wakeup, 512):
                pass
        except BlockingIOError:  # empty: the usual case
            pass

    def _crashed(self, exc: Exception) -> None:
        """The loop itself failed: kill every worker (nothing can route for them) and say why."""
        log.critical("supervisor.crashed code=%d error=%s: %s fix=this is a bug unless the host ran out of a "
                     "resource (see the error); systemd or the kubelet restarts metalloid",
                     EXIT_SUPERVISOR_ERROR, type(exc).__name__, exc)
        log.debug("supervisor.crashed traceback", exc_info=True)
        for slot in self._slots:
            process = slot.process
            if process is None:
                continue
            try:
                process.kill()
                process.join(timeout=2)
            except Exception as kill_error:  # pragma: no cover - best effort on the way out
                log.error("worker.kill_failed worker=%s error=%r", slot.spec.name, kill_error)
        try:
            stop_forkserver()
        except Exception as stop_error:  # pragma: no cover - best effort on the way out
            log.error("forkserver.stop_failed error=%r", stop_error)

    def _step(self) -> None:
        now = self._clock()
        self._last_loop = now
        for slot in self._slots:
            self._drain(slot)
        for slot in self._slots:
            if slot.process is not None and slot.process.exitcode is not None:
                self._exited(slot, now)
        if self._reload_requested:
            self._reload_requested = False
            self._forward_hup()
        if self._stop_requested and self._stopping is None:
            self._begin_stop(now)
        for slot in self._slots:
            self._tick(slot, now)
        if self._stopping is not None:
            self._continue_stop(now)
        self._publish_probes()
        if self._stopping is None:
            self._log_readiness()
        self._trimmer.maybe(now)

    # -- stopping ------------------------------------------------------------

    def _begin_stop(self, now: float) -> None:
        log.info("supervisor.stopping grace=%gs", self.settings.grace_seconds)
        # Membership leaves first; the phases after it: supervising/stopping.py.
        self._stopping = stopping.begin(now)
        self._stop_role(lambda s: s.spec.role == MEMBERSHIP, now)

    def _continue_stop(self, now: float) -> None:
        assert self._stopping is not None
        seen = stopping.Seen(
            now=now,
            membership_gone=all(s.process is None for s in self._slots if s.spec.role == MEMBERSHIP),
            announcers_gone=all(s.process is None for s in self._slots if s.spec.role == ANNOUNCER),
            all_gone=all(s.process is None for s in self._slots),
            members_known=self.state.members is not None,
        )
        self._stopping, actions = stopping.advance(self._stopping, seen, grace_seconds=self.settings.grace_seconds)
        if actions.stop_announcers:
            self._stop_role(lambda s: s.spec.role == ANNOUNCER, now)
        if actions.stop_all:
            self._stop_role(lambda s: True, now)
        if actions.done:
            self._exit_code = self._exit_after_stop
            return
        if actions.kill:
            for slot in self._slots:
                if slot.process is not None:
                    log.warning("worker.killed worker=%s reason=grace period over", slot.spec.name)
                    slot.process.kill()

    def _stop_role(self, which: Callable[[Slot], bool], now: float) -> None:
        for slot in self._slots:
            if not which(slot) or slot.ws.state is State.STOPPING:
                continue
            slot.ws = lifecycle.transition(slot.ws, lifecycle.StopRequested(at=now))
            if slot.ws.state is State.STOPPING and slot.inbox is not None:
                slot.inbox.put(Control.STOP)
