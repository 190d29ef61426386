"""Assignments as the API shows them: Service status plus the pool annotation.

The speaker does not allocate: it announces what the controller wrote. It
rebuilds the assignments from `status.loadBalancer.ingress` (`status_ips`) and
the `metallb.io/ip-allocated-from-pool` annotation, falling back to the pool
whose ranges hold the IP when the annotation is missing (a Service MetalLB
assigned before it wrote that annotation). The controller uses the same
function to pass what Services already hold to `allocate` as `previous`.

`speaker_allocation` is the speaker's whole "allocation" (the assignments and
each pool's counts), read by its watcher and passed on by its allocator-role
worker (`kubernetes.status_allocator`). Pure: no API client here, so that
worker imports none.
"""

from __future__ import annotations

from collections.abc import Iterable

from supervisor.allocating.freeips import PoolIndex
from supervisor.allocating.results import AllocationResult, Assignment, PoolCounts
from supervisor.config.model import Config, IPAddress, IPAddressPool, ServiceKey

POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
SHARING_ANNOTATION = "metallb.io/allow-shared-ip"


def assignments_from_status(config: Config) -> tuple[Assignment, ...]:
    out: list[Assignment] = []
    for service in sorted(config.services, key=lambda s: s.key):
        if not service.is_load_balancer or not service.status_ips:
            continue
        annotations = dict(service.annotations)
        pool = annotations.get(POOL_ANNOTATION) or _pool_holding(config, service.status_ips[0]) or ""
        sharing = service.sharing_key or None  # an empty allow-shared-ip is no key (MetalLB)
        out.append(Assignment(service=service.key, ips=service.status_ips, pool=pool, sharing_key=sharing))
    return tuple(out)


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


def previous_from_status(config: Config) -> dict[ServiceKey, tuple[IPAddress, ...]]:
    """The `previous` mapping `allocate` takes."""
    return {a.service: a.ips for a in assignments_from_status(config)}


def _pool_holding(config: Config, ip: IPAddress) -> str | None:
    return next((p.name for p in config.pools if p.contains(ip)), None)
