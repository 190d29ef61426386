"""What the HTTP thread reads: /status assembled from the loop's state, /healthz, /readyz.

/healthz and /readyz read what the loop computed on its last turn, without
any lock, so they never wait behind a /status being built (or a stuck loop:
that is exactly what /healthz must report). /status reads the references the
loop published on its last turn (`StatusSources`), also without the loop's
lock, and builds the document in the HTTP thread; only one /status renders at
a time. The documents themselves are built by `status` and rendered by
`rendering`; this module only gathers the references they need and publishes
the probes' answers. It changes no worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from supervisor.announcing.enabling import Decision
from supervisor.supervising.lifecycle import State, WorkerState
from supervisor.supervising.rendering import Field, assemble, plain
from supervisor.supervising.shell import Shell, Slot
from supervisor.supervising.starvation import run_queue_wait
from supervisor.supervising.state import ANNOUNCER, RoutedState
from supervisor.supervising.status import announcer_rows, readiness, status_fields

# The supervisor's logger: its parts log as the one process they make (operators filter by it).
log = logging.getLogger("supervisor.supervising.supervisor")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusSources:
    """What one /status is built from, as the loop last published it."""

    state: RoutedState
    workers: tuple[WorkerState, ...]
    protocols: dict[str, str]  # announcer worker name → protocol
    slots: dict[str, tuple[WorkerState, float]]  # protocol → its worker's state and hang deadline
    decisions: tuple[Decision, ...]


class Probing(Shell):
    """/status, /healthz, /readyz and the worker states, for the HTTP thread, tests and the bench."""

    _published_status: StatusSources
    _render_wanted: threading.Event
    _rendered: Mapping[str, str] | None  # the render-ahead thread's last texts of the kept fields
    _ahead: threading.Thread | None
    _ahead_wanted: bool
    _ahead_lock: threading.Lock
    _ahead_stop: threading.Event

    def status(self) -> dict[str, Any]:
        """The /status document as a dict (tests, tools); HTTP serves `status_json`, the same as text."""
        fields, _ = self._status_fields()
        return {name: plain(compute()) for name, _, compute in fields}

    def status_json(self) -> bytes:
        """/status rendered as `json.dumps(status(), indent=2)` (rendering.py).

        Once the render-ahead thread runs (`render_ahead`), the fields kept as
        text are its last complete render and only the live ones (workers,
        announcers) are rendered here: a request never pays for a re-render,
        and is at most one render behind the loop. Without it (tests, tools),
        or before its first render, this renders what changed itself.
        """
        fields, lock = self._status_fields()
        texts = self._rendered
        if texts is not None:
            return assemble(fields, texts)
        with lock:  # one render at a time: the renderer keeps the last text of each field
            document = self._renderer.render(fields)
        self._start_rendering_ahead()
        return document

    def render_ahead(self) -> Callable[[], None]:
        """From the first /status on, re-render it in a thread whenever the loop publishes; returns the stop.

        A render of 1,000 Services after a change is tens of ms of CPU; done in
        the request, a client polling during reloads waited for it behind the
        loop's own work under the GIL (bench/status.py: p99 ~200 ms). Started
        by the first request, not here: a node nobody asks keeps no text
        (~1 MB with 1,000 Services) and spends nothing on renders.
        """
        self._ahead_wanted = True

        def stop_rendering() -> None:
            self._ahead_wanted = False
            self._ahead_stop.set()
            self._render_wanted.set()
            thread = self._ahead
            if thread is not None:
                thread.join(timeout=5)
            self._rendered = None

        return stop_rendering

    def _start_rendering_ahead(self) -> None:
        with self._ahead_lock:
            if not self._ahead_wanted or self._ahead is not None:
                return
            self._ahead = threading.Thread(target=self._render_ahead, name="status-render", daemon=True)
            self._ahead.start()
        self._render_wanted.set()

    def _render_ahead(self) -> None:
        reported: str | None = None
        while True:
            self._render_wanted.wait()
            self._render_wanted.clear()
            if self._ahead_stop.is_set():
                return
            fields, lock = self._status_fields()
            try:
                with lock:
                    self._rendered = self._renderer.keep(fields)
                reported = None
            except Exception as exc:  # a bad payload: requests render themselves and answer the error
                self._rendered = None
                error = f"{type(exc).__name__}: {exc}"
                if error != reported:  # once per error, not at every turn of the loop
                    reported = error
                    log.error("status.render_failed error=%s", error)
                    log.debug("status.render_failed traceback", exc_info=True)

    def _status_fields(self) -> tuple[list[Field], threading.Lock]:
        # The references the loop published at the end of its last step: no
        # lock shared with the loop, so a /status never waits while the loop
        # unpickles and routes a 1,000-Service config (bench/status.py). The
        # document, tens of ms, is built from them outside the loop.
        published = self._published_status
        now = self._clock()
        state, workers, protocols, slots, decisions = (published.state, published.workers, published.protocols,
                                                       published.slots, published.decisions)
        fields = status_fields(state, workers, now=now, version=self.settings.version, protocols=protocols)
        fields.append(("announcers", None,
                       lambda: announcer_rows(decisions, slots, state.statuses, now=now, waits=run_queue_wait)))
        return fields, self._render_lock

    def _publish_status(self) -> None:
        """Take what /status reads (loop thread, under the lock): references only, swapped whole.

        Everything they point to is replaced, never changed in place, but for the
        state's dicts, which are copied.
        """
        self._published_status = StatusSources(
            state=replace(self.state, statuses=dict(self.state.statuses), in_flight=dict(self.state.in_flight)),
            workers=tuple(s.ws for s in self._active()),
            protocols={s.spec.name: s.spec.protocol
                       for s in self._slots if s.spec.role == ANNOUNCER},
            slots={s.spec.protocol: (s.ws, self._hang_deadline(s))
                   for s in self._slots if s.spec.role == ANNOUNCER},
            decisions=tuple(self._decisions.values()),
        )
        self._render_wanted.set()  # the render-ahead thread, once it runs, looks at what changed

    def readyz(self) -> tuple[bool, str]:
        if self._clock() - self._last_loop > 2.0:
            return False, "the supervisor loop is stuck"
        return self._published_readiness

    def _readiness(self) -> tuple[bool, str]:
        announcers = {s.spec.name: self._hang_deadline(s) for s in self._active() if s.spec.role == ANNOUNCER}
        return readiness(self.state, [s.ws for s in self._active()], list(announcers), now=self._clock(),
                         hang_deadlines=announcers, waits=run_queue_wait)

    def _hang_deadline(self, slot: Slot) -> float:
        return slot.spec.hang_timeout_seconds or self.settings.hung_seconds

    def healthz(self) -> tuple[bool, str]:
        fatal = self._published_fatal
        if fatal:
            return False, f"worker {fatal} is FATAL (restart budget spent)"
        if self._clock() - self._last_loop > 2.0:
            return False, "the supervisor loop is stuck"
        return True, "ok"

    def _publish_probes(self) -> None:
        self._publish_status()
        self._published_readiness = self._readiness()
        # A FAILED announcer is not a reason to restart the node: the others keep announcing.
        fatal = [s.ws.name for s in self._slots if s.ws.state is State.FATAL and s.spec.role != ANNOUNCER]
        self._published_fatal = fatal[0] if fatal else None

    def _active(self) -> list[Slot]:
        """The slots that exist for /status and readiness: all but those still waiting for peers, and
        announcers disabled by the config once their process is gone."""
        return [s for s in self._slots if not (s.spec.needs_peers and s.ws.started_at is None)
                and not (s.spec.role == ANNOUNCER and s.process is None and not self._enabled(s))]

    def _enabled(self, slot: Slot) -> bool:
        decision = self._decisions.get(slot.spec.protocol)
        return decision is None or decision.enabled

    def _log_readiness(self) -> None:
        ready, why = self._published_readiness
        if ready != self._ready:
            self._ready = ready
            if ready:
                log.info("supervisor.ready generation=%d", self.state.generation)
            else:
                log.warning("supervisor.not_ready reason=%s", why)

    def worker_states(self) -> dict[str, WorkerState]:
        with self.lock:
            return {s.spec.name: replace(s.ws) for s in self._slots}
