"""The worker lifecycle: an explicit, pure state machine (supervisord's states).

    EXITED ──Spawned──▶ STARTING ──Tick (start window survived + heartbeat)──▶ RUNNING
       ▲                  │  ▲                                                  │
       │                  │  └──────────── Spawned ◀── BACKOFF ◀── Exited ──────┘
       │                  └──Exited──▶ BACKOFF (or FATAL when the budget is spent)
       └── Exited ◀── STOPPING ◀── StopRequested (from STARTING / RUNNING)
    FATAL ──Revived──▶ EXITED   (an announcer given a fresh start: its AnnouncerConfig changed)

The shell (`supervisor.supervising.supervisor`) feeds events in and acts on the
state that comes out: it spawns when BACKOFF's `retry_at` is due, kills a hung
worker (the kill comes back as an `Exited` event), and exits the whole run when
a worker is FATAL. The restart policy is not in here: the shell asks
`supervisor.supervising.backoff` for the delay and passes it in `Exited`, so
this module stays a table of transitions with no clock and no I/O.

States are an Enum, never strings (circus's bug class), and an event that makes
no sense in a state leaves it unchanged rather than guessing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TypeAlias


class State(enum.Enum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"


@dataclass(frozen=True, slots=True, kw_only=True)
class Spawned:
    """A new process for the worker exists (`pid`), started at `at`."""

    pid: int
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatSeen:
    at: float
    waited: float | None = None  # the worker's run-queue wait then (starvation.run_queue_wait)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """Time passed; promotes STARTING to RUNNING once the start window is survived."""

    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Exited:
    """The process is gone. `retry_in` is the backoff delay; None = budget spent."""

    at: float
    exitcode: int | None
    error: str | None = None
    retry_in: float | None = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRequested:
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Revived:
    """A FATAL worker gets a fresh start (an announcer whose AnnouncerConfig changed)."""

    at: float


Event: TypeAlias = Spawned | HeartbeatSeen | Tick | Exited | StopRequested | Revived


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerState:
    """One worker's lifecycle facts, as /status shows them."""

    name: str
    state: State = State.EXITED
    pid: int | None = None
    restarts: int = 0
    last_error: str | None = None
    started_at: float | None = None
    last_heartbeat: float | None = None
    waited_at_heartbeat: float | None = None
    retry_at: float | None = None
    exitcode: int | None = None
    # Seconds a new process must stay alive (and have sent one heartbeat)
    # before it counts as RUNNING: a worker that crashes while importing is
    # not "running" (supervisord's startsecs).
    start_seconds: float = 0.3

    @property
    def alive(self) -> bool:
        return self.state in (State.STARTING, State.RUNNING, State.STOPPING)


def transition(ws: WorkerState, event: Event) -> WorkerState:
    """The next state of `ws` after `event`. Pure."""
    match event:
        case Spawned(pid=pid, at=at):
            if ws.state in (State.EXITED, State.BACKOFF):
                # A (re)started process begins its start window; it is not
                # trusted with RUNNING until it survives it. Restarts count
                # every spawn after the first.
                restarts = ws.restarts + (1 if ws.started_at is not None else 0)
                return replace(
                    ws, state=State.STARTING, pid=pid, started_at=at, last_heartbeat=None,
                    retry_at=None, exitcode=None, restarts=restarts,
                )
            return ws
        case HeartbeatSeen(at=at, waited=waited):
            if ws.state in (State.STARTING, State.RUNNING, State.STOPPING):
                # Only a live process's heartbeat counts; a late one from a
                # dead process must not look like life.
                return replace(ws, last_heartbeat=at, waited_at_heartbeat=waited)
            return ws
        case Tick(at=at):
            if (
                ws.state is State.STARTING
                and ws.started_at is not None
                and ws.last_heartbeat is not None
                and at - ws.started_at >= ws.start_seconds
            ):
                # Survived the start window and proved its loop runs: RUNNING.
                return replace(ws, state=State.RUNNING)
            return ws
        case Exited(at=at, exitcode=code, error=error, retry_in=retry_in):
            if ws.state is State.STOPPING:
                # We asked it to stop and it did: done, no restart.
                return replace(ws, state=State.EXITED, pid=None, exitcode=code, retry_at=None)
            if ws.state in (State.STARTING, State.RUNNING):
                reason = error or f"exited with code {code}"
                if retry_in is None:
                    # Restart budget spent: give up on this worker; the shell
                    # exits the run so systemd or the kubelet takes over.
                    return replace(ws, state=State.FATAL, pid=None, exitcode=code, last_error=reason, retry_at=None)
                # Died unasked (crash, kill -9, hung and killed): wait out the
                # backoff delay, then respawn.
                return replace(
                    ws, state=State.BACKOFF, pid=None, exitcode=code, last_error=reason, retry_at=at + retry_in
                )
            return ws
        case StopRequested():
            if ws.state in (State.STARTING, State.RUNNING):
                # Graceful stop asked: the shell sends Control.STOP and waits
                # for the process to exit (or kills it after the grace period).
                return replace(ws, state=State.STOPPING, retry_at=None)
            if ws.state is State.BACKOFF:
                # Nothing is running: cancel the pending restart.
                return replace(ws, state=State.EXITED, retry_at=None)
            return ws
        case Revived():
            if ws.state is State.FATAL:
                # The shell also gives it a new restart budget; last_error stays for /status.
                return replace(ws, state=State.EXITED, retry_at=None)
            return ws
    raise AssertionError(f"unknown lifecycle event {event!r}")  # pragma: no cover


def start_window_end(ws: WorkerState) -> float | None:
    """When a STARTING worker's start window is over, so the Tick that may promote it is due; else None."""
    if ws.state is State.STARTING and ws.started_at is not None:
        return ws.started_at + ws.start_seconds
    return None


def restart_due(ws: WorkerState, now: float) -> bool:
    """True when the shell should spawn the worker again now."""
    return ws.state is State.BACKOFF and ws.retry_at is not None and now >= ws.retry_at


def silence(*, since: float, now: float, waited_then: float | None, waited_now: float | None) -> float:
    """How long a worker has been silent by its own time: wall time since `since` less the time its
    loop waited for a CPU meanwhile (supervisor.supervising.starvation reads the waits)."""
    quiet = now - since
    if waited_then is None or waited_now is None:
        return quiet
    return quiet - max(0.0, waited_now - waited_then)


def hung(ws: WorkerState, now: float, *, deadline: float, start_deadline: float | None = None,
         waited: float | None = None) -> bool:
    """True when a live worker has sent no heartbeat for `deadline` seconds.

    Before its first heartbeat a worker is measured from its spawn against
    `start_deadline` (default: `deadline`): interpreter start and imports on a
    loaded 2-core node can take seconds, which is slow, not hung. STOPPING is
    not judged here, the grace period governs it. `waited`: the worker's
    run-queue wait now; the part of the silence it spent waiting for a CPU
    does not count (supervisor.supervising.starvation).
    """
    if ws.state not in (State.STARTING, State.RUNNING):
        return False
    if ws.last_heartbeat is None:
        limit = deadline if start_deadline is None else start_deadline
        return ws.started_at is not None and now - ws.started_at > limit
    return silence(since=ws.last_heartbeat, now=now, waited_then=ws.waited_at_heartbeat, waited_now=waited) > deadline
