"""The glue between the pipes and `routing.route`: a worker's message in, routed messages out.

Where a message goes is decided by `routing.route` (pure); this module only
applies its answer: it sends to the workers of a role, records heartbeats,
metrics and status reports, and emits the metrics a routed message implies
(config reloads, the allocator's per-pool gauges). It spawns nothing itself:
a config with peers or new announcers is handed to `reloading`.
"""

from __future__ import annotations

import logging

from supervisor.messages import (
    AllocationDone,
    AnnouncementsChanged,
    ConfigLoaded,
    ConfigRejected,
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
from supervisor.roles import Role
from supervisor.supervising import lifecycle, routing
from supervisor.supervising.lifecycle import State
from supervisor.supervising.shell import Shell, Slot
from supervisor.supervising.starvation import run_queue_wait

# The supervisor's logger: its parts log as the one process they make (operators filter by it).
log = logging.getLogger("supervisor.supervising.supervisor")


class Dispatching(Shell):
    """Route what a worker sent; send what routing decided."""

    def _send(self, role: Role, message: ToWorker) -> None:
        for slot in self._slots:
            if slot.spec.role == role and slot.inbox is not None and slot.ws.state in (State.STARTING, State.RUNNING):
                slot.inbox.put(message)

    def _route(self, slot: Slot, message: FromWorker) -> None:
        match message:
            case WorkerHeartbeat():
                waited = run_queue_wait(slot.ws.pid) if slot.ws.pid is not None else None
                seen = lifecycle.HeartbeatSeen(at=self._clock(), waited=waited)
                slot.ws = lifecycle.transition(slot.ws, seen)
            case MetricUpdate():
                self.metrics.apply(message)
            case StatusReport(worker=_, payload=payload):
                self.state.statuses[slot.spec.name] = payload
                if slot.spec.role == Role.ANNOUNCER:  # sent on change, 1,000 elections; membership's every second
                    self._trimmer.touched(self._clock())
            case WorkerFailed(error=error):
                slot.failure = error
            case ConfigLoaded() | ConfigRejected() | AllocationDone() | MembersChanged() | AnnouncementsChanged():
                self._apply(message, routing.route(self.state, message))
                if not isinstance(message, MembersChanged):  # that one comes every second, with ages
                    self._trimmer.touched(self._clock())
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
