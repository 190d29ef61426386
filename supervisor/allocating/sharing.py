"""IP sharing: when two Services may hold the same IP (`metallb.io/allow-shared-ip`).

MetalLB's rule (`sharingOK`, `checkSharing`), kept exactly so a cluster's
existing sharing keeps working: every holder of the IP carries the same
non-empty sharing key (an empty annotation value is no key); no two holders
use the same port and protocol; and all holders have the same "backend key"
(k8salloc `BackendKey`): the pod selector rendered as `k=v,k=v` for
`externalTrafficPolicy: Local`, empty for Cluster, because one node announces
the IP and it must host endpoints of every Service on it. A Local Service
without a selector therefore has the empty backend key of a Cluster Service
and may share with one, exactly as in MetalLB.

A `Holder` is the allocator's record of one IP in use; `sharing_conflict`
answers, as a one-line reason or None, whether a Service may join it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config.model import ExternalTrafficPolicy, IPAddress, Service, ServiceKey

SHARING_ANNOTATION = "metallb.io/allow-shared-ip"

Port = tuple[int, str]


def ports_of(service: Service) -> frozenset[Port]:
    return frozenset((p.port, p.protocol.upper()) for p in service.ports)


def backend_key(service: Service) -> str:
    """MetalLB's backend key: `k=v,k=v` (sorted) of the selector for Local Services, "" otherwise."""
    if service.external_traffic_policy is ExternalTrafficPolicy.LOCAL:
        return ",".join(f"{k}={v}" for k, v in sorted(service.selector))
    return ""


def sharing_key_of(service: Service) -> str | None:
    """The Service's sharing key; an empty `allow-shared-ip` value is none (MetalLB's `sharingOK`)."""
    return service.sharing_key or None


@dataclass(slots=True, kw_only=True)
class Holder:
    """One IP in use: its pool, the sharing terms and every Service on it with its ports."""

    ip: IPAddress
    pool: str
    sharing_key: str | None
    backend: str
    # The policy of the first holder, only to word a refusal.
    local: bool
    services: dict[ServiceKey, frozenset[Port]] = field(default_factory=dict)

    @classmethod
    def first(cls, ip: IPAddress, pool: str, key: ServiceKey, service: Service) -> Holder:
        holder = cls(
            ip=ip,
            pool=pool,
            sharing_key=sharing_key_of(service),
            backend=backend_key(service),
            local=service.external_traffic_policy is ExternalTrafficPolicy.LOCAL,
        )
        holder.services[key] = ports_of(service)
        return holder

    def join(self, key: ServiceKey, service: Service) -> None:
        self.services[key] = ports_of(service)


def _policy(local: bool) -> str:
    return "Local" if local else "Cluster"


def sharing_conflict(holder: Holder, key: ServiceKey, service: Service) -> str | None:
    """Why `service` (named `key`) may not hold `holder.ip` too, or None when it may."""
    others = sorted(k for k in holder.services if k != key)
    if not others:
        return None
    first = others[0]
    ip = holder.ip
    ours_key = sharing_key_of(service)
    if holder.sharing_key is None or ours_key != holder.sharing_key:
        theirs = repr(holder.sharing_key) if holder.sharing_key else "none"
        ours = repr(ours_key) if ours_key else "none"
        return (
            f"IP {ip} is held by {first} without a matching {SHARING_ANNOTATION} key "
            f"({first} has {theirs}, {key} has {ours})"
        )
    ours_backend = backend_key(service)
    if ours_backend != holder.backend:
        ours_local = service.external_traffic_policy is ExternalTrafficPolicy.LOCAL
        if ours_local != holder.local:
            return (
                f"IP {ip} is shared with {first} ({SHARING_ANNOTATION}: {holder.sharing_key}), but {first} has "
                f"externalTrafficPolicy {_policy(holder.local)} and {key} has {_policy(ours_local)}; "
                "services sharing an IP need the same policy (or Local without a selector)"
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
