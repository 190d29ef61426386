"""What a worker's exit means: a backoff, the end of the run, or a FAILED announcer.

A core worker (watcher, allocator, membership) whose restart budget is spent
stops the run with exit code 3 (EXIT_WORKER_FATAL). An announcer whose budget
is spent is FAILED instead: it is left stopped, /status and /readyz say so,
the gauge `metalloid_announcer_failed{announcer}` is 1 and in Kubernetes the
watcher writes a Warning Event, while every other announcer keeps announcing.
A config that changes its AnnouncerConfig (or disables and re-enables it)
gives it a fresh start (`reloading`). The lifecycle states and the budget are
decided in `lifecycle` and `backoff`; this module only acts on them.
"""

from __future__ import annotations

import logging

from supervisor.announcing.api import AnnouncerState
from supervisor.messages import AnnouncementsChanged, AnnouncerFailed, MetricKind, MetricOp
from supervisor.roles import Mode
from supervisor.supervising.lifecycle import State
from supervisor.supervising.shell import EXIT_WORKER_FATAL, Shell, Slot
from supervisor.supervising.state import ANNOUNCER, WATCHER

# The supervisor's logger: its parts log as the one process they make (operators filter by it).
log = logging.getLogger("supervisor.supervising.supervisor")

ANNOUNCER_FAILED = "metalloid_announcer_failed"
ANNOUNCER_FAILED_HELP = ("1 while an announcer is FAILED: its restart budget is spent and it is left stopped "
                         "until its AnnouncerConfig changes or metalloid restarts")


class Failing(Shell):
    """Log and act on a worker's exit; keep the FAILED announcers' bookkeeping."""

    def _report_exit(self, slot: Slot, *, code: int | None, error: str | None, retry_in: float | None,
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

    def _announcer_failed(self, slot: Slot) -> None:
        protocol = slot.spec.protocol
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

    def _failed_metric(self, slot: Slot, value: float) -> None:
        self._metric(ANNOUNCER_FAILED, MetricKind.GAUGE, ANNOUNCER_FAILED_HELP,
                     {"announcer": slot.spec.protocol}, MetricOp.SET, value)
