"""Reloads: SIGHUP forwarded to the watcher, and the workers that follow an accepted config.

The file watcher (standalone) is told through its inbox (`Control.RELOAD`);
a Kubernetes watcher gets the signal, which it ignores (it watches the API).

Which announcers run is decided on every accepted config
(`supervisor.announcing.enabling`) when `SupervisorSettings.announcer_template`
is set: a reload can start, stop or restart one (a changed AnnouncerConfig
restarts its announcer with a graceful stop, so `start()` sees the new
settings). Each announcer's hang deadline is its AnnouncerConfig's
`spec.hangTimeoutSeconds`, else `hung_seconds`. A worker that waits for peers
(`WorkerSpec.needs_peers`) starts with the first config that lists one.
What to do for each announcer is `following.step`'s (pure); this module only
carries it out. It does not read or validate configs: the watcher does.
"""

from __future__ import annotations

import logging
import os
import signal

from supervisor.announcing.enabling import Decision, decide
from supervisor.config.model import Config
from supervisor.messages import ConfigLoaded, Control
from supervisor.roles import Mode
from supervisor.supervising import following, lifecycle
from supervisor.supervising.backoff import RestartPolicy
from supervisor.supervising.lifecycle import State
from supervisor.supervising.shell import Shell, Slot
from supervisor.supervising.specs import announcer_spec
from supervisor.supervising.state import ANNOUNCER, WATCHER

# The supervisor's logger: its parts log as the one process they make (operators filter by it).
log = logging.getLogger("supervisor.supervising.supervisor")


class Reloading(Shell):
    """Forward SIGHUP; start, stop, restart or revive workers as a new config says."""

    def request_reload(self) -> None:
        self._reload_requested = True

    def _forward_hup(self) -> None:
        for slot in self._slots:
            if slot.spec.role == WATCHER and slot.process is not None and slot.process.pid:
                log.info("config.reload_requested worker=%s", slot.spec.name)
                if self.settings.mode == Mode.STANDALONE:
                    # The file watcher: a message wakes its wait for the inbox at once (a
                    # signal waited out its poll); a dead one's restart reads the files anyway.
                    if slot.inbox is not None:
                        slot.inbox.put(Control.RELOAD)
                    continue
                try:
                    os.kill(slot.process.pid, signal.SIGHUP)
                except ProcessLookupError:
                    # Died and already reaped by the forkserver (its parent), not
                    # yet seen by this loop: its restart reads the file anyway.
                    log.info("config.reload_skipped worker=%s reason=worker is gone", slot.spec.name)

    def _follow_announcers(self, config: Config) -> None:
        """Start, stop, restart or revive announcers as `enabling.decide` says for `config` (`following.step`)."""
        template = self.settings.announcer_template
        if template is None or self._stopping is not None:
            return
        now = self._clock()
        self._decisions = {d.protocol: d for d in decide(config, self.settings.requested_announcers)}
        slots = {s.spec.protocol: s for s in self._slots if s.spec.role == ANNOUNCER}
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
                slot = Slot(spec, self.settings, self._clock)
                self._slots.append(slot)
            if slot is not None:
                self._carry_out(todo, slot, now, decision.reason)

    def _carry_out(self, todo: following.Step, slot: Slot, now: float, reason: str) -> None:
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

    def _stop_slot(self, slot: Slot, now: float) -> None:
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
