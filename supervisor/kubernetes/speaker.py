"""The speaker's Kubernetes side: assignments from Service status, and `nodeAssigned` Events.

The speaker never allocates. Its "allocation" is what the controller wrote:
`assignments_from_status`, sent on as an `AllocationDone` right after each
`ConfigLoaded`, so the supervisor and the announcers run exactly as in
standalone mode. When the API server is unreachable nothing new arrives and
the supervisor keeps routing the last state: announcing continues, and
failover (membership heartbeats) does not depend on the API.

`NodeAssignedReporter` emits MetalLB's `nodeAssigned` Event when this node
becomes the layer 2 winner for a Service (not on every reconcile).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from supervisor.allocating.freeips import PoolIndex
from supervisor.allocating.results import AllocationResult, Assignment, PoolCounts
from supervisor.config.model import Config, IPAddressPool, ServiceKey
from supervisor.electing.election import elect_layer2, eligibility, preferred_scores
from supervisor.kubernetes import events, kinds
from supervisor.kubernetes.assignments import assignments_from_status

log = logging.getLogger(__name__)


def speaker_allocation(config: Config) -> AllocationResult:
    found = assignments_from_status(config)
    return AllocationResult(assignments={a.service: a for a in found}, pending={},
                            pools=pool_counts(config.pools, found))


def pool_counts(pools: Iterable[IPAddressPool], assignments: Iterable[Assignment]) -> tuple[PoolCounts, ...]:
    """Each pool's totals and the IPs in use, counted as the allocator counts them.

    The allocator's own `PoolIndex` does the counting (a shared IP counts once,
    buggy .0/.255 addresses are neither total nor used when the pool avoids
    them), so a speaker's /status and metrics match the controller's. An IP
    counts for the pool its Assignment names, and only when inside it.
    """
    indexes = {pool.name: PoolIndex(pool) for pool in pools}
    for assignment in assignments:
        index = indexes.get(assignment.pool)
        if index is None:
            continue
        for ip in assignment.ips:
            position = index.locate(ip)
            if position is not None:
                index.mark(position)
    return tuple(
        PoolCounts(pool=name, total_v4=index.total(4), assigned_v4=index.used(4), total_v6=index.total(6),
                   assigned_v6=index.used(6))
        for name, index in indexes.items()
    )


def layer2_winners(config: Config, result: AllocationResult, members: frozenset[str]) -> dict[ServiceKey, str]:
    """Service → the node MetalLB's layer 2 ranking picks among live, eligible members."""
    winners: dict[ServiceKey, str] = {}
    for key, assignment in result.assignments.items():
        service = config.service(key)
        if service is None or not assignment.ips:
            continue
        ads = config.l2_advertisements_for_service(assignment.pool, service)
        if not ads or (service.sharing_key is not None and any(ad.service_selectors for ad in ads)):
            continue  # no advertisement, or MetalLB's sharedIPWithServiceSelector: nobody announces
        selectors = tuple(s for ad in ads for s in ad.node_selectors) if all(ad.node_selectors for ad in ads) else ()
        elected = elect_layer2(
            eligibility(config, service, node_selectors=selectors, members=members), assignment.ips[0],
            preferred_scores(config, ads),
        )
        if elected.winner:
            winners[key] = elected.winner
    return winners


class NodeAssignedReporter:
    def __init__(self, recorder: events.EventRecorder, node_name: str) -> None:
        self.recorder = recorder
        self.node_name = node_name
        self._announcing: set[ServiceKey] = set()

    def update(
        self, winners: Mapping[ServiceKey, str], service_object: Callable[[ServiceKey], Mapping[str, Any] | None]
    ) -> int:
        mine = {key for key, node in winners.items() if node == self.node_name}
        written = 0
        unreported: set[ServiceKey] = set()  # not written (API down, not cached yet): try again next update
        for key in sorted(mine - self._announcing):
            obj = service_object(key)
            if obj is not None and self.recorder.record(
                obj,
                kinds.SERVICE,
                events.NORMAL,
                events.NODE_ASSIGNED,
                f'announcing from node "{self.node_name}" with protocol "layer2"',
            ):
                written += 1
            elif obj is None or not self.recorder.reported("Service", key.namespace, key.name):
                unreported.add(key)
        for key in self._announcing - mine:
            self.recorder.forget("Service", key.namespace, key.name)
        self._announcing = mine - unreported
        return written
