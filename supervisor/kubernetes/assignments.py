"""Assignments as the API shows them: Service status plus the pool annotation.

The speaker does not allocate: it announces what the controller wrote. It
rebuilds the assignments from `status.loadBalancer.ingress` (`status_ips`) and
the `metallb.io/ip-allocated-from-pool` annotation, falling back to the pool
whose ranges hold the IP when the annotation is missing (a Service MetalLB
assigned before it wrote that annotation). The controller uses the same
function to pass what Services already hold to `allocate` as `previous`.
"""

from __future__ import annotations

from supervisor.allocating.results import Assignment
from supervisor.config.model import Config, IPAddress, ServiceKey

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


def previous_from_status(config: Config) -> dict[ServiceKey, tuple[IPAddress, ...]]:
    """The `previous` mapping `allocate` takes."""
    return {a.service: a.ips for a in assignments_from_status(config)}


def _pool_holding(config: Config, ip: IPAddress) -> str | None:
    return next((p.name for p in config.pools if p.contains(ip)), None)
