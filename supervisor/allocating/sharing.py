"""IP sharing: when two Services may hold the same IP (`metallb.io/allow-shared-ip`).

MetalLB's rule, kept exactly so a cluster's existing sharing keeps working:
every holder of the IP carries the same non-empty sharing key; no two holders
use the same port and protocol; and for `externalTrafficPolicy: Local` all
holders have the same pod selector (MetalLB's "backend key"), because one node
announces the IP and it must host endpoints of every Service on it. A Cluster
Service and a Local Service never share (their backend keys differ).

A `Holder` is the allocator's record of one IP in use; `sharing_conflict`
answers, as a one-line reason or None, whether a Service may join it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config.model import ExternalTrafficPolicy, IPAddress, Labels, Service, ServiceKey

SHARING_ANNOTATION = "metallb.io/allow-shared-ip"

Port = tuple[int, str]


def ports_of(service: Service) -> frozenset[Port]:
    return frozenset((p.port, p.protocol.upper()) for p in service.ports)


def backend_key(service: Service) -> Labels | None:
    """MetalLB's backend key: the selector for Local services, nothing for Cluster."""
    if service.external_traffic_policy is ExternalTrafficPolicy.LOCAL:
        return service.selector
    return None


@dataclass(slots=True, kw_only=True)
class Holder:
    """One IP in use: its pool, the sharing terms and every Service on it with its ports."""

    ip: IPAddress
    pool: str
    sharing_key: str | None
    backend: Labels | None
    services: dict[ServiceKey, frozenset[Port]] = field(default_factory=dict)

    @classmethod
    def first(cls, ip: IPAddress, pool: str, key: ServiceKey, service: Service) -> Holder:
        holder = cls(ip=ip, pool=pool, sharing_key=service.sharing_key, backend=backend_key(service))
        holder.services[key] = ports_of(service)
        return holder

    def join(self, key: ServiceKey, service: Service) -> None:
        self.services[key] = ports_of(service)


def _policy(backend: Labels | None) -> str:
    return "Cluster" if backend is None else "Local"


def sharing_conflict(holder: Holder, key: ServiceKey, service: Service) -> str | None:
    """Why `service` (named `key`) may not hold `holder.ip` too, or None when it may."""
    others = sorted(k for k in holder.services if k != key)
    if not others:
        return None
    first = others[0]
    ip = holder.ip
    if holder.sharing_key is None or service.sharing_key != holder.sharing_key:
        theirs = repr(holder.sharing_key) if holder.sharing_key else "none"
        ours = repr(service.sharing_key) if service.sharing_key else "none"
        return (
            f"IP {ip} is held by {first} without a matching {SHARING_ANNOTATION} key "
            f"({first} has {theirs}, {key} has {ours})"
        )
    ours_backend = backend_key(service)
    if ours_backend != holder.backend:
        if (ours_backend is None) != (holder.backend is None):
            return (
                f"IP {ip} is shared with {first} ({SHARING_ANNOTATION}: {holder.sharing_key}), but {first} has "
                f"externalTrafficPolicy {_policy(holder.backend)} and {key} has {_policy(ours_backend)}; "
                "services sharing an IP need the same policy"
            )
        return (
            f"IP {ip} is shared with {first} ({SHARING_ANNOTATION}: {holder.sharing_key}), but "
            "externalTrafficPolicy Local needs both services to have the same selector"
        )
    ports = ports_of(service)
    for other in others:
        clash = sorted(holder.services[other] & ports)
        if clash:
            port, protocol = clash[0]
            return f"port {port}/{protocol} of {key} clashes with {other} on shared IP {ip}"
    return None
