"""The supervisor process shell: spawn workers, route their messages, restart them.

Every worker is its own OS process, forked by multiprocessing's forkserver
(chosen explicitly, the same on every Python version: a clean server process
that imported only `preload`, never the supervisor's state, so nothing of the
supervisor is inherited; the shared modules' pages are, which is the point:
BENCHMARKS.md has the memory figures) with its own inbox
and outbox pipe (`channels`: plain pipes, no Queue semaphores, so no resource
tracker process). One pipe pair per worker, recreated on every spawn, so a
worker killed in the middle of a write can only ever break its own pipe, which
dies with it. The loop waits with `multiprocessing.connection.wait()` on every
worker's `Process.sentinel` (death) and its outbox reader (messages), with a
50 ms timeout for timers.

Everything that decides is elsewhere and pure: `lifecycle` (states),
`backoff` (delays and budget), `state` (what to route and replay), `status`
(the /status document). This module only moves messages and processes.

Signals: SIGTERM/SIGINT stop gracefully (announcers first, so they hand over,
then the rest; SIGKILL for whatever outlives the grace period; exit 0).
SIGHUP is forwarded to the watcher (reload now). A core worker (watcher,
allocator, membership) whose restart budget is spent stops the run with exit
code 3 (EXIT_WORKER_FATAL). An announcer whose budget is spent is FAILED
instead: it is left stopped, /status and /readyz say so, the gauge
`metalloid_announcer_failed{announcer}` is 1 and in Kubernetes the watcher
writes a Warning Event, while every other announcer keeps announcing. A config
that changes its AnnouncerConfig (or disables and re-enables it) gives it a
fresh start.

Which announcers run is decided on every accepted config
(`supervisor.announcing.enabling`) when `SupervisorSettings.announcer_template`
is set: a reload can start, stop or restart one (a changed AnnouncerConfig
restarts its announcer with a graceful stop, so `start()` sees the new
settings). Each announcer's hang deadline is its AnnouncerConfig's
`spec.hangTimeoutSeconds`, else `hung_seconds`.
A worker that cannot even be spawned (EMFILE at the open-file limit, ENOMEM,
EAGAIN) counts as a failed start and backs off like a crash. Any other
unexpected error in the loop kills the workers and ends the run with exit
code 4 (EXIT_SUPERVISOR_ERROR), one log line saying why: a supervisor that
can no longer supervise must not linger half alive (non-daemon children would
keep it from exiting), it must exit so systemd or the kubelet starts a fresh
one.

/healthz and /readyz read what the loop computed on its last turn, without
the lock, so they never wait behind a /status being built (or a stuck loop:
that is exactly what /healthz must report).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Final

from supervisor.announcing.api import AnnouncerState
from supervisor.announcing.enabling import Decision, decide
from supervisor.config.model import Config
from supervisor.messages import (
    AllocationDone,
    AnnouncementsChanged,
    AnnouncerFailed,
    ConfigLoaded,
    ConfigRejected,
    Control,
    FromWorker,
    MembersChanged,
    MetricKind,
    MetricOp,
    MetricUpdate,
    StatusReport,
    ToWorker,
    WorkerFailed,
    WorkerHeartbeat,
)
from supervisor.roles import Mode, Role
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising import following, lifecycle, routing, stopping
from supervisor.supervising.backoff import BackoffSettings, RestartPolicy
from supervisor.supervising.channels import Outgoing
from supervisor.supervising.lifecycle import State, WorkerState
from supervisor.supervising.rendering import Field, StatusRenderer
from supervisor.supervising.settings import WorkerSettings
from supervisor.supervising.state import ANNOUNCER, MEMBERSHIP, WATCHER, RoutedState
from supervisor.supervising.status import announcer_rows, readiness, status_fields

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_WORKER_FATAL = 3
EXIT_SUPERVISOR_ERROR = 4
START_METHOD: Final = "forkserver"
PRELOAD: Final = ["supervisor.supervising.preload"]
CHILD_MAIN = "supervisor.supervising.child:child_main"
# The loop's timer resolution: start windows, hung checks and backoff retries
# are all judged at this granularity.
LOOP_SECONDS = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """A worker to run: `entry` is "module:function" taking (settings, inbox, outbox).

    `needs_peers`: start it only once a loaded config lists a Node other than
    this one (standalone membership: alone, the live members are this node,
    and its process would be memory for nothing). Decided on every config, so
    a reload that adds the first peer starts it; once started it stays, and
    follows later configs itself.
    """

    name: str
    role: Role
    entry: str
    settings: WorkerSettings
    needs_peers: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorSettings:
    node_name: str
    mode: Mode = Mode.STANDALONE
    version: str = "0"
    grace_seconds: float = 5.0
    # No heartbeat for this long = hung (six missed 0.5 s heartbeats; an
    # allocation of thousands of services stays well below it).
    hung_seconds: float = 3.0
    # The start window: long enough to catch a worker dying in its first
    # message, short enough that kill -9 → RUNNING stays under a second.
    start_seconds: float = 0.3
    # Spawn to first heartbeat: a fresh interpreter plus imports, slow on a
    # busy node without bytecode caches; slow is not hung.
    start_deadline_seconds: float = 15.0
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    # Announcers follow the config (`enabling.decide`) when a template is set:
    # each one's WorkerSettings is this with its name, protocol and
    # AnnouncerConfig filled in. None: exactly the announcer specs given run.
    announcer_template: WorkerSettings | None = None
    # --announcers: the complete list, overriding the config.
    requested_announcers: tuple[str, ...] | None = None
    # The allocator's per-pool gauges (metallb_allocator_*): exported by the
    # controller and `metalloid run`, not by speakers (MetalLB's split: one
    # series per pool in the cluster, not one per node).
    pool_metrics: bool = True


ANNOUNCER_FAILED = "metalloid_announcer_failed"
ANNOUNCER_FAILED_HELP = ("1 while an announcer is FAILED: its restart budget is spent and it is left stopped "
                         "until its AnnouncerConfig changes or metalloid restarts")


def announcer_spec(template: WorkerSettings, config: Config | None, protocol: str) -> WorkerSpec:
    """The worker that runs announcer `protocol` with its AnnouncerConfig from `config`."""
    announcer = config.announcer(protocol) if config is not None else None
    name = f"announcer-{protocol}"
    settings = replace(
        template, name=name, protocol=protocol,
        announcer_settings_json=announcer.settings_json if announcer else "{}",
        hang_timeout_seconds=announcer.hang_timeout_seconds if announcer else None,
    )
    return WorkerSpec(name=name, role=ANNOUNCER, entry="supervisor.announcing.host:run", settings=settings)


class _Slot:
    """One worker: its spec, lifecycle state, restart policy and current process."""

    def __init__(self, spec: WorkerSpec, settings: SupervisorSettings, clock: Callable[[], float]) -> None:
        self.spec = spec
        self.ws = WorkerState(name=spec.name, start_seconds=settings.start_seconds)
        self.policy = RestartPolicy(settings.backoff, clock=clock, name=spec.name)
        self.process: multiprocessing.process.BaseProcess | None = None
        self.inbox: Outgoing | None = None
        self.outbox: multiprocessing.connection.Connection | None = None
        self.failure: str | None = None
        # An announcer stopped to be started again with a new spec (its AnnouncerConfig changed).
        self.restart_pending = False
        self.stop_requested_at: float | None = None


class Supervisor:
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
        self._slots = [_Slot(spec, settings, clock) for spec in specs]
        self.state = RoutedState(node_name=settings.node_name, mode=settings.mode)
        self.lock = threading.Lock()
        self._stop_requested = False
        self._reload_requested = False
        self._stopping: stopping.Stopping | None = None
        self._exit_code: int | None = None
        self._pool_names: set[str] = set()
        self._last_loop = clock()
        self._ready = False
        # Why each announcer runs or not, for /status; without a template, the specs given.
        self._decisions = {d.protocol: d for d in decisions} or {
            s.spec.settings.protocol or s.spec.name: Decision(protocol=s.spec.settings.protocol or s.spec.name,
                                                              enabled=True, reason="given at start")
            for s in self._slots if s.spec.role == ANNOUNCER}
        # Published by the loop for the lock-free probes (each swapped whole).
        self._published_readiness: tuple[bool, str] = (False, "starting")
        self._renderer = StatusRenderer()
        self._render_lock = threading.Lock()
        self._published_fatal: str | None = None

    # -- public: the HTTP thread reads these ---------------------------------

    def status(self) -> dict[str, Any]:
        """The /status document as a dict (tests, tools); HTTP serves `status_json`, the same as text."""
        fields, _ = self._status_fields()
        return {name: compute() for name, _, compute in fields}

    def status_json(self) -> bytes:
        """/status rendered as `json.dumps(status(), indent=2)`, re-rendering only what changed (rendering.py)."""
        fields, lock = self._status_fields()
        with lock:  # one render at a time: the renderer keeps the last text of each field
            return self._renderer.render(fields)

    def _status_fields(self) -> tuple[list[Field], threading.Lock]:
        # Only references are taken under the loop's lock (everything they
        # point to is replaced, never changed in place); the document, tens of
        # ms with 1,000 Services, is built outside it, so the loop (a reload, a
        # heartbeat) never waits behind a /status (bench/status.py).
        with self.lock:
            state = replace(self.state, statuses=dict(self.state.statuses), in_flight=dict(self.state.in_flight))
            workers = [s.ws for s in self._active()]
            protocols = {s.spec.name: s.spec.settings.protocol or s.spec.name
                         for s in self._slots if s.spec.role == ANNOUNCER}
            slots = {s.spec.settings.protocol or s.spec.name: (s.ws, self._hang_deadline(s))
                     for s in self._slots if s.spec.role == ANNOUNCER}
            decisions = tuple(self._decisions.values())
            now = self._clock()
        fields = status_fields(state, workers, now=now, version=self.settings.version, protocols=protocols)
        fields.append(("announcers", None, lambda: announcer_rows(decisions, slots, state.statuses, now=now)))
        return fields, self._render_lock

    def readyz(self) -> tuple[bool, str]:
        if self._clock() - self._last_loop > 2.0:
            return False, "the supervisor loop is stuck"
        return self._published_readiness

    def _readiness(self) -> tuple[bool, str]:
        announcers = {s.spec.name: self._hang_deadline(s) for s in self._active() if s.spec.role == ANNOUNCER}
        return readiness(self.state, [s.ws for s in self._active()], list(announcers), now=self._clock(),
                         hang_deadlines=announcers)

    def _hang_deadline(self, slot: _Slot) -> float:
        return slot.spec.settings.hang_timeout_seconds or self.settings.hung_seconds

    def healthz(self) -> tuple[bool, str]:
        fatal = self._published_fatal
        if fatal:
            return False, f"worker {fatal} is FATAL (restart budget spent)"
        if self._clock() - self._last_loop > 2.0:
            return False, "the supervisor loop is stuck"
        return True, "ok"

    def request_reload(self) -> None:
        self._reload_requested = True

    def install_signal_handlers(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stop_requested = True

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self._reload_requested = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    # -- the loop ------------------------------------------------------------

    def run(self) -> int:
        _without_resource_tracker()
        try:
            self._publish_probes()
            for slot in self._slots:
                if not slot.spec.needs_peers:
                    self._spawn(slot)
            while self._exit_code is None:
                handles: list[Any] = []
                for slot in self._slots:
                    if slot.process is not None:
                        handles.append(slot.process.sentinel)
                    if slot.outbox is not None:
                        handles.append(slot.outbox)
                multiprocessing.connection.wait(handles, timeout=LOOP_SECONDS)
                with self.lock:
                    self._step()
        except Exception as exc:
            self._crashed(exc)
            return EXIT_SUPERVISOR_ERROR
        _stop_forkserver()
        log.info("supervisor.exited code=%d", self._exit_code)
        return self._exit_code

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
            _stop_forkserver()
        except Exception as stop_error:  # pragma: no cover - best effort on the way out
            log.error("forkserver.stop_failed error=%r", stop_error)

    def _publish_probes(self) -> None:
        self._published_readiness = self._readiness()
        # A FAILED announcer is not a reason to restart the node: the others keep announcing.
        fatal = [s.ws.name for s in self._slots if s.ws.state is State.FATAL and s.spec.role != ANNOUNCER]
        self._published_fatal = fatal[0] if fatal else None

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

    def _active(self) -> list[_Slot]:
        """The slots that exist for /status and readiness: all but those still waiting for peers, and
        announcers disabled by the config once their process is gone."""
        return [s for s in self._slots if not (s.spec.needs_peers and s.ws.started_at is None)
                and not (s.spec.role == ANNOUNCER and s.process is None and not self._enabled(s))]

    def _enabled(self, slot: _Slot) -> bool:
        decision = self._decisions.get(slot.spec.settings.protocol or slot.spec.name)
        return decision is None or decision.enabled

    def _log_readiness(self) -> None:
        ready, why = self._published_readiness
        if ready != self._ready:
            self._ready = ready
            if ready:
                log.info("supervisor.ready generation=%d", self.state.generation)
            else:
                log.warning("supervisor.not_ready reason=%s", why)

    def _drain(self, slot: _Slot) -> None:
        outbox = slot.outbox
        if outbox is None:
            return
        while True:
            try:
                if not outbox.poll():
                    return
                message = outbox.recv()
            except (EOFError, OSError) as exc:
                # The worker exited (EOF), maybe in the middle of a write: this
                # pipe is finished; the sentinel reports the exit itself.
                log.debug("pipe.closed worker=%s error=%r", slot.spec.name, exc)
                outbox.close()
                slot.outbox = None
                return
            self._route(slot, message)

    def _tick(self, slot: _Slot, now: float) -> None:
        before = slot.ws.state
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Tick(at=now))
        if before is not slot.ws.state:
            log.info("worker.running worker=%s pid=%s", slot.ws.name, slot.ws.pid)
        deadline = self._hang_deadline(slot)
        hung = lifecycle.hung(slot.ws, now, deadline=deadline,
                              start_deadline=max(self.settings.start_deadline_seconds, deadline))
        if hung and slot.process is not None and slot.failure is None:
            slot.failure = f"hung: no heartbeat for {deadline:g}s, killed"
            log.error("worker.hung worker=%s pid=%s deadline=%s", slot.ws.name, slot.ws.pid, deadline)
            slot.process.kill()
        if self._stopping is None and lifecycle.restart_due(slot.ws, now):
            self._spawn(slot)
        if (self._stopping is None and slot.ws.state is State.STOPPING and slot.process is not None
                and slot.stop_requested_at is not None and now - slot.stop_requested_at > self.settings.grace_seconds):
            # One announcer stopped by a reload outlived the grace period, as the whole run's would.
            log.warning("worker.killed worker=%s reason=grace period over", slot.spec.name)
            slot.process.kill()
            slot.stop_requested_at = None
        if slot.inbox is not None:
            self._metric("metalloid_queue_depth", MetricKind.GAUGE, "Messages waiting in a worker's inbox",
                         {"worker": slot.spec.name}, MetricOp.SET, float(slot.inbox.qsize()))

    # -- processes -----------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        ctx = self._ctx
        opened: list[multiprocessing.connection.Connection] = []
        try:
            _check_fd_headroom()
            inbox_reader, inbox_writer = ctx.Pipe(duplex=False)
            opened += [inbox_reader, inbox_writer]
            outbox_reader, outbox_writer = ctx.Pipe(duplex=False)
            opened += [outbox_reader, outbox_writer]
            process = ctx.Process(
                target=_child_target(),
                args=(slot.spec.entry, slot.spec.settings, inbox_reader, outbox_writer, os.getpid()),
                name=f"metalloid-{slot.spec.name}",
                daemon=False,
            )
            process.start()
        except OSError as exc:
            # EMFILE at the open-file limit, EAGAIN/ENOMEM from fork: no
            # process, so a failed start, backed off and budgeted like a crash.
            for end in opened:
                end.close()
            self._spawn_failed(slot, exc)
            return
        # Close our copies of the ends only the child uses: a child killed in
        # the middle of a write then shows up as EOF instead of a reader
        # blocked forever on half a message, and a dead reader as EPIPE.
        outbox_writer.close()
        inbox_reader.close()
        inbox = Outgoing(inbox_writer, slot.spec.name)
        first = slot.ws.started_at is None
        slot.process, slot.inbox, slot.outbox, slot.failure = process, inbox, outbox_reader, None
        assert process.pid is not None
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Spawned(pid=process.pid, at=self._clock()))
        log.info("worker.spawned worker=%s pid=%d restarts=%d", slot.spec.name, process.pid, slot.ws.restarts)
        if not first:
            self._metric("metalloid_worker_restarts_total", MetricKind.COUNTER,
                         "Times a worker process was restarted after it died or hung",
                         {"worker": slot.spec.name}, MetricOp.INC, 1.0)
        if slot.spec.role == ANNOUNCER:
            self._failed_metric(slot, 0.0)
        for message in self.state.replay(slot.spec.role):
            inbox.put(message)

    def _spawn_failed(self, slot: _Slot, exc: OSError) -> None:
        now = self._clock()
        error = f"spawn failed: {exc.strerror or exc} (errno {exc.errno})"
        # Through STARTING, so the lifecycle applies its one rule for failures.
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Spawned(pid=0, at=now))
        retry_in = slot.policy.record_failure(ran_for=0.0)
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Exited(at=now, exitcode=None, error=error,
                                                                 retry_in=retry_in))
        self._report_exit(slot, code=None, error=error, retry_in=retry_in, now=now)

    def _exited(self, slot: _Slot, now: float) -> None:
        process = slot.process
        assert process is not None
        self._drain(slot)
        code = process.exitcode
        error = slot.failure
        if error is None and code not in (0, None):
            error = f"exited with code {code}" if code is not None and code > 0 else f"killed by signal {-(code or 0)}"
        ran_for = now - (slot.ws.started_at or now)
        retry_in: float | None = 0.0
        if slot.ws.state in (State.STARTING, State.RUNNING):
            if self._stopping is not None:
                slot.ws = lifecycle.transition(slot.ws, lifecycle.StopRequested(at=now))
            else:
                retry_in = slot.policy.record_failure(ran_for=ran_for)
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Exited(at=now, exitcode=code, error=error, retry_in=retry_in))
        self._discard(slot)
        self._report_exit(slot, code=code, error=error, retry_in=retry_in, now=now)

    def _report_exit(self, slot: _Slot, *, code: int | None, error: str | None, retry_in: float | None,
                       now: float) -> None:
        if slot.ws.state is State.BACKOFF:
            log.warning("worker.died worker=%s code=%s error=%s retry_in=%.3f", slot.ws.name, code, error,
                        retry_in or 0.0)
        elif slot.ws.state is State.FATAL and slot.spec.role == ANNOUNCER:
            self._announcer_failed(slot)
        elif slot.ws.state is State.FATAL:
            log.critical("supervisor.giving_up worker=%s restarts=%d window=%gs last_error=%s "
                         "fix=see the worker's log lines above; systemd or the kubelet restarts metalloid",
                         slot.ws.name, slot.policy.restarts_in_window(),
                         self.settings.backoff.window_seconds, slot.ws.last_error)
            if self._stopping is None:
                self._exit_after_stop = EXIT_WORKER_FATAL
                self._begin_stop(now)
        else:
            log.info("worker.exited worker=%s code=%s", slot.ws.name, code)
            if slot.restart_pending and self._stopping is None:
                # Stopped for a new AnnouncerConfig: start it again with it.
                slot.restart_pending = False
                if self._enabled(slot):
                    self._spawn(slot)

    def _announcer_failed(self, slot: _Slot) -> None:
        protocol = slot.spec.settings.protocol or slot.spec.name
        log.error("announcer.failed worker=%s protocol=%s restarts=%d window=%gs last_error=%s "
                  "fix=see the worker's log lines above; the other announcers keep announcing; change its "
                  "AnnouncerConfig (or restart metalloid) to start it again", slot.ws.name, protocol,
                  slot.policy.restarts_in_window(), self.settings.backoff.window_seconds, slot.ws.last_error)
        self._failed_metric(slot, 1.0)
        self._send(WATCHER, AnnouncerFailed(protocol=protocol, error=slot.ws.last_error or "restart budget spent"))
        # Its process is gone and stays gone: it announces nothing, and the
        # speaker's ServiceL2Status and Events must say so.
        nothing = AnnouncementsChanged(worker=slot.spec.name, state=AnnouncerState(protocol=protocol))
        self.state.announced[slot.spec.name] = nothing
        if self.state.mode == Mode.KUBERNETES:
            self._send(WATCHER, nothing)

    def _failed_metric(self, slot: _Slot, value: float) -> None:
        self._metric(ANNOUNCER_FAILED, MetricKind.GAUGE, ANNOUNCER_FAILED_HELP,
                     {"announcer": slot.spec.settings.protocol or slot.spec.name}, MetricOp.SET, value)

    def _discard(self, slot: _Slot) -> None:
        if slot.inbox is not None:
            # Whatever is still queued for a dead reader is dropped; never blocks.
            slot.inbox.close()
        if slot.outbox is not None:
            slot.outbox.close()
        if slot.process is not None:
            slot.process.join(timeout=0)
            slot.process.close()
        slot.process, slot.inbox, slot.outbox = None, None, None

    # -- stopping ------------------------------------------------------------

    _exit_after_stop = EXIT_OK

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

    def _stop_role(self, which: Callable[[_Slot], bool], now: float) -> None:
        for slot in self._slots:
            if not which(slot) or slot.ws.state is State.STOPPING:
                continue
            slot.ws = lifecycle.transition(slot.ws, lifecycle.StopRequested(at=now))
            if slot.ws.state is State.STOPPING and slot.inbox is not None:
                slot.inbox.put(Control.STOP)

    def _forward_hup(self) -> None:
        for slot in self._slots:
            if slot.spec.role == WATCHER and slot.process is not None and slot.process.pid:
                log.info("config.reload_requested worker=%s", slot.spec.name)
                try:
                    os.kill(slot.process.pid, signal.SIGHUP)
                except ProcessLookupError:
                    # Died and already reaped by the forkserver (its parent), not
                    # yet seen by this loop: its restart reads the file anyway.
                    log.info("config.reload_skipped worker=%s reason=worker is gone", slot.spec.name)

    # -- routing -------------------------------------------------------------

    def _send(self, role: Role, message: ToWorker) -> None:
        for slot in self._slots:
            if slot.spec.role == role and slot.inbox is not None and slot.ws.state in (State.STARTING, State.RUNNING):
                slot.inbox.put(message)

    def _route(self, slot: _Slot, message: FromWorker) -> None:
        match message:
            case WorkerHeartbeat():
                slot.ws = lifecycle.transition(slot.ws, lifecycle.HeartbeatSeen(at=self._clock()))
            case MetricUpdate():
                self.metrics.apply(message)
            case StatusReport(worker=_, payload=payload):
                self.state.statuses[slot.spec.name] = payload
            case WorkerFailed(error=error):
                slot.failure = error
            case ConfigLoaded() | ConfigRejected() | AllocationDone() | MembersChanged() | AnnouncementsChanged():
                self._apply(message, routing.route(self.state, message))
            case _:  # a closed union, but a buggy worker may send anything
                log.warning(  # type: ignore[unreachable]
                    "message.unexpected worker=%s type=%s", slot.spec.name, type(message).__name__)

    def _apply(self, message: routing.Routable, routed: routing.Routed) -> None:
        """Send what `routing.route` decided, around the shell's own jobs (metrics, announcers, peers)."""
        self.state = routed.state
        if isinstance(message, ConfigLoaded | ConfigRejected):
            self._reload_metric("rejected" if isinstance(message, ConfigRejected)
                                else "ok" if routed.config is not None else "unchanged")
            self._config_flags()
        if routed.config is not None:
            log.info("config.routed generation=%d", routed.config.generation)
        for role, outgoing in routed.outgoing:
            self._send(role, outgoing)
        if routed.allocation is not None and self.settings.pool_metrics:
            self._pool_metrics(routed.allocation)
        if routed.config is not None:
            self._start_on_peers(routed.config)
            self._follow_announcers(routed.config.config)

    # -- announcers follow the config ----------------------------------------

    def _follow_announcers(self, config: Config) -> None:
        """Start, stop, restart or revive announcers as `enabling.decide` says for `config` (`following.step`)."""
        template = self.settings.announcer_template
        if template is None or self._stopping is not None:
            return
        now = self._clock()
        self._decisions = {d.protocol: d for d in decide(config, self.settings.requested_announcers)}
        slots = {s.spec.settings.protocol or s.spec.name: s for s in self._slots if s.spec.role == ANNOUNCER}
        for protocol in sorted(set(self._decisions) | set(slots)):
            decision = self._decisions.setdefault(protocol, Decision(
                protocol=protocol, enabled=False, reason="no longer enabled by the config"))
            slot = slots.get(protocol)
            spec = announcer_spec(template, config, protocol) if decision.enabled else None
            changed = slot is not None and spec is not None and slot.spec.settings != spec.settings
            if slot is not None and spec is not None:
                slot.spec = spec
            todo = following.step(enabled=decision.enabled, state=slot.ws.state if slot else None,
                                  alive=slot is not None and slot.process is not None, changed=changed)
            if slot is None and spec is not None and todo is following.Step.START:
                slot = _Slot(spec, self.settings, self._clock)
                self._slots.append(slot)
            if slot is not None:
                self._carry_out(todo, slot, now, decision.reason)

    def _carry_out(self, todo: following.Step, slot: _Slot, now: float, reason: str) -> None:
        if todo is not following.Step.RESTART:
            slot.restart_pending = False
        if todo in (following.Step.REVIVE, following.Step.CLEAR):
            slot.ws = lifecycle.transition(slot.ws, lifecycle.Revived(at=now))
            self._failed_metric(slot, 0.0)
        if todo in (following.Step.START, following.Step.REVIVE):
            # A fresh start (first, re-enabled, or a FAILED one with a new AnnouncerConfig): a fresh budget.
            log.info("announcer.%s worker=%s reason=%s", "revived" if todo is following.Step.REVIVE else "enabled",
                     slot.spec.name, reason if todo is following.Step.START else "its AnnouncerConfig changed")
            slot.policy = RestartPolicy(self.settings.backoff, clock=self._clock, name=slot.spec.name)
            self._spawn(slot)
        elif todo is following.Step.RESTART:
            slot.restart_pending = True
            if slot.ws.state is not State.STOPPING:
                log.info("announcer.restarting worker=%s reason=its AnnouncerConfig changed", slot.spec.name)
                self._stop_slot(slot, now)
        elif todo is following.Step.STOP:
            log.info("announcer.disabled worker=%s reason=%s", slot.spec.name, reason)
            self._stop_slot(slot, now)

    def _stop_slot(self, slot: _Slot, now: float) -> None:
        slot.stop_requested_at = now
        slot.ws = lifecycle.transition(slot.ws, lifecycle.StopRequested(at=now))
        if slot.ws.state is State.STOPPING and slot.inbox is not None:
            slot.inbox.put(Control.STOP)

    def _start_on_peers(self, loaded: ConfigLoaded) -> None:
        if self._stopping is not None:
            return
        if not any(n.name != self.settings.node_name for n in loaded.config.nodes):
            return
        for slot in self._slots:
            if slot.spec.needs_peers and slot.ws.started_at is None and slot.process is None:
                log.info("worker.peers_appeared worker=%s", slot.spec.name)
                self._spawn(slot)  # the replay hands it this config and the allocation

    # -- metrics -------------------------------------------------------------

    def _metric(self, name: str, kind: MetricKind, doc: str, labels: dict[str, str], op: MetricOp,
                value: float) -> None:
        self.metrics.apply(MetricUpdate(name=name, kind=kind, documentation=doc, labels=tuple(labels.items()),
                                        op=op, value=value))

    def _reload_metric(self, result: str) -> None:
        self._metric("metalloid_config_reloads_total", MetricKind.COUNTER,
                     "Config loads by result (ok, unchanged, rejected)", {"result": result}, MetricOp.INC, 1.0)

    def _config_flags(self) -> None:
        loaded = 1.0 if self.state.loaded is not None else 0.0
        stale = 1.0 if self.state.stale else 0.0
        for name, value in (("metallb_k8s_client_config_loaded_bool", loaded),
                            ("metallb_k8s_client_config_stale_bool", stale)):
            self._metric(name, MetricKind.GAUGE, "", {}, MetricOp.SET, value)

    def _pool_metrics(self, message: AllocationDone) -> None:
        names = set()
        services: dict[str, int] = {}
        for assignment in message.result.assignments.values():
            services[assignment.pool] = services.get(assignment.pool, 0) + 1
        for c in message.result.pools:
            names.add(c.pool)
            labels = {"pool": c.pool}
            for name, value in (
                ("metallb_allocator_services_allocated_total", services.get(c.pool, 0)),
                ("metallb_allocator_addresses_total", c.total),
                ("metallb_allocator_addresses_in_use_total", c.assigned_v4 + c.assigned_v6),
                ("metallb_allocator_ipv4_addresses_total", c.total_v4),
                ("metallb_allocator_ipv4_addresses_in_use_total", c.assigned_v4),
                ("metallb_allocator_ipv6_addresses_total", c.total_v6),
                ("metallb_allocator_ipv6_addresses_in_use_total", c.assigned_v6),
            ):
                self._metric(name, MetricKind.GAUGE, "", labels, MetricOp.SET, float(value))
        for gone in self._pool_names - names:
            for name in ("metallb_allocator_services_allocated_total",
                         "metallb_allocator_addresses_total", "metallb_allocator_addresses_in_use_total",
                         "metallb_allocator_ipv4_addresses_total", "metallb_allocator_ipv4_addresses_in_use_total",
                         "metallb_allocator_ipv6_addresses_total", "metallb_allocator_ipv6_addresses_in_use_total"):
                self._metric(name, MetricKind.GAUGE, "", {"pool": gone}, MetricOp.REMOVE, 0.0)
        self._pool_names = names

    # -- introspection for tests and the bench -------------------------------

    def worker_states(self) -> dict[str, WorkerState]:
        with self.lock:
            return {s.spec.name: replace(s.ws) for s in self._slots}


# Descriptors one spawn needs: our two pipes (4), and in the forkserver
# handshake its socket and two more pipes (5), with some margin.
SPAWN_FDS = 16


def _check_fd_headroom() -> None:
    """Raise EMFILE before a spawn that would run out of descriptors half-way.

    Half-way is worse than not at all: CPython 3.11's forkserver dies with an
    EOFError when a client connects and then fails to send its descriptors,
    and every worker (its children, with a parent-death signal) dies with it.
    Counting first keeps an EMFILE a failed start of one worker.
    """
    import errno
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = len(os.listdir("/proc/self/fd"))  # at the limit this itself fails with EMFILE
    if soft != resource.RLIM_INFINITY and soft - used < SPAWN_FDS:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def _without_resource_tracker() -> None:
    """Keep multiprocessing from starting its resource tracker, a whole Python process (~6.5 MiB PSS).

    Python 3.11 starts it for spawn and forkserver whether or not anything is
    tracked. It only ever tracks named semaphores and shared memory, and
    metalloid creates neither (`channels` uses pipes, not Queues), so its
    connection is pointed at /dev/null: the "is it alive" probe succeeds and
    nothing is started. The cost, for a third-party plugin that does use a
    multiprocessing lock and is then SIGKILLed: one /dev/shm/sem.* entry left
    until reboot, instead of being unlinked by the tracker. (Private API, as
    `_stop_forkserver`; the process test checks no tracker process appears.)
    """
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is not None and getattr(tracker, "_fd", None) is None:
        tracker._fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def _stop_forkserver() -> None:
    """Wait for the forkserver to exit, so that no process outlives the supervisor's exit."""
    import multiprocessing.forkserver

    # Private, but the only way to join it: closing its "alive" pipe (which our
    # own exit would do a moment later anyway) and reaping it.
    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)
    if stop is not None:
        try:
            stop()
        except OSError as exc:  # pragma: no cover - already gone
            log.debug("forkserver.stop_failed error=%r", exc)


def _child_target() -> Callable[..., None]:
    from supervisor.supervising.child import child_main

    return child_main
