"""Layer 2's policy as a pure function: which IPs this node announces, where, and why.

For every Assignment: the L2Advertisements covering its pool and selecting
the Service (`serviceSelectors`; none: not announced, and the reason says so;
a Service with `allow-shared-ip` is never announced through advertisements
with serviceSelectors, as in MetalLB), the candidates from the host's
`eligibility` with the union of those advertisements' nodeSelectors (none at
all when the Service has no serving endpoint: MetalLB's `activeEndpointExists`;
the reason is kept for /status), and
MetalLB's ranking (`preferredNodeSelectors` scores, then the hash of the
Service's *first* IP), so a dual-stack Service moves
as one and a mixed MetalLB/metalloid cluster picks the same node. Services
sharing an IP (allow-shared-ip) may rank differently (`externalTrafficPolicy:
Local`); the IP still has exactly one winner: the election of the first
Service, by namespace/name, that has any candidate.

No I/O: `announcer` turns a `Plan` into sockets, frames and metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.api import (
    NO_SERVICE_MATCH,
    SHARED_WITH_SELECTOR,
    AnnouncerView,
    Assignment,
    Config,
    Election,
    IPAddress,
    L2Advertisement,
    LabelSelector,
    Service,
    ServiceKey,
    elect_layer2,
    eligibility,
    preferred_scores,
)

BIND_LOCAL_ANNOTATION = "metalloid.io/bind-local"

NO_ADVERTISEMENT = "no L2Advertisement covers pool {pool}: add one listing it in spec.ipAddressPools"
NO_SERVICE = "the Service is not in the config any more"
NO_CANDIDATE = "no node is eligible to announce it (see excluded)"

OTHER_SERVICE = "shares the IP with {other}, whose election decides who announces it"


@dataclass(frozen=True, slots=True, kw_only=True)
class IPElection:
    """One (service, IP) decision, as /status prints it."""

    service: ServiceKey
    ip: IPAddress
    election: Election | None
    winner: str | None
    not_announced_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ownership:
    """An IP this node must announce. `interfaces` empty means every suitable one."""

    ip: IPAddress
    services: tuple[ServiceKey, ...]
    interfaces: tuple[str, ...]
    bind_local: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    elections: tuple[IPElection, ...]
    owned: tuple[Ownership, ...]
    # Interfaces any advertisement names: opened even when the exclude list matches them.
    named_interfaces: frozenset[str]


def _annotated(annotations: tuple[tuple[str, str], ...]) -> bool:
    return dict(annotations).get(BIND_LOCAL_ANNOTATION, "").lower() == "true"


def _node_selectors(advs: tuple[L2Advertisement, ...]) -> tuple[LabelSelector, ...]:
    # An advertisement without nodeSelectors selects every node, so the union does too.
    if any(not a.node_selectors for a in advs):
        return ()
    return tuple(s for a in advs for s in a.node_selectors)


def _for_this_node(config: Config, node: str, advs: tuple[L2Advertisement, ...]) -> tuple[L2Advertisement, ...]:
    found = config.node(node)
    labels = found.label_map() if found else {}
    return tuple(a for a in advs if not a.node_selectors or any(s.matches(labels) for s in a.node_selectors))


def _elect(view: AnnouncerView, assignment: Assignment, services: Mapping[ServiceKey, Service],
           slices: Mapping[ServiceKey, tuple[Any, ...]]) -> list[IPElection]:
    config = view.config
    service = services.get(assignment.service)
    reason = None
    election = None
    if service is None:
        reason = NO_SERVICE
    elif not config.l2_advertisements_for(assignment.pool):
        reason = NO_ADVERTISEMENT.format(pool=assignment.pool)
    elif not (advs := config.l2_advertisements_for_service(assignment.pool, service)):
        reason = NO_SERVICE_MATCH.format(pool=assignment.pool)
    elif service.sharing_key is not None and any(a.service_selectors for a in advs):
        # MetalLB's sharedIPWithServiceSelector: the annotation's presence is enough.
        reason = SHARED_WITH_SELECTOR
    else:
        eligible = eligibility(config, service, node_selectors=_node_selectors(advs), members=view.members,
                               slices=slices)
        election = elect_layer2(eligible, assignment.ips[0], preferred_scores(config, advs))
        if election.winner is None:
            reason = election.not_served or NO_CANDIDATE
    return [
        IPElection(
            service=assignment.service,
            ip=ip,
            election=election,
            winner=election.winner if election else None,
            not_announced_reason=reason,
        )
        for ip in assignment.ips
    ]


def plan(view: AnnouncerView) -> Plan:
    """Elect every assigned IP and keep what this node (`view.node_name`) wins."""
    config = view.config
    by_key = config.services_by_key()
    slices = config.endpoint_slices_by_service()
    assignments = sorted((a for a in view.assignments if a.ips), key=lambda a: a.service)
    elections: list[IPElection] = []
    deciding: dict[IPAddress, IPElection] = {}
    for assignment in assignments:
        for entry in _elect(view, assignment, by_key, slices):
            first = deciding.get(entry.ip)
            if first is None and entry.winner is not None:
                deciding[entry.ip] = entry
            elif first is not None and first.winner != entry.winner:
                entry = IPElection(
                    service=entry.service, ip=entry.ip, election=entry.election, winner=first.winner,
                    not_announced_reason=OTHER_SERVICE.format(other=first.service),
                )  # fmt: skip
            elections.append(entry)
    owned: list[Ownership] = []
    pools = {a.service: a.pool for a in assignments}
    # The Services this node won, by IP, gathered once (a scan of every election per IP was O(n²)).
    won: dict[IPAddress, set[ServiceKey]] = {}
    for e in elections:
        if e.winner == view.node_name:
            won.setdefault(e.ip, set()).add(e.service)
    for ip, decided in sorted(deciding.items(), key=lambda kv: (kv[0].version, int(kv[0]))):
        if decided.winner != view.node_name:
            continue
        services = tuple(sorted(won.get(ip, ())))
        advs: tuple[L2Advertisement, ...] = ()
        bind = config.settings.bind_local
        for key in services:
            found = by_key.get(key)
            for_service = config.l2_advertisements_for_service(pools[key], found) if found else ()
            pool_advs = _for_this_node(config, view.node_name, for_service)
            advs += pool_advs
            pool = config.pool(pools[key])
            bind = bind or any(_annotated(a.annotations) for a in pool_advs)
            bind = bind or bool(pool and _annotated(pool.annotations))
        every = any(not a.interfaces for a in advs) or not advs
        interfaces = () if every else tuple(sorted({i for a in advs for i in a.interfaces}))
        owned.append(
            Ownership(ip=ip, services=services, interfaces=interfaces, bind_local=bind and view.mode == "standalone")
        )
    named = frozenset(i for a in config.l2_advertisements for i in a.interfaces)
    return Plan(elections=tuple(elections), owned=tuple(owned), named_interfaces=named)
