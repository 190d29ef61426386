"""A /status-shaped document computed from a config file alone, for offline `explain`.

`metalloid explain ns/name --config FILE` has no running node to ask, so it
computes what a node would report: the allocator's answer for the file, and
for each assigned Service the layer 2 election (MetalLB's ranking) with every
Node of the file considered alive, since there is no membership to ask. BGP
is shown as "every eligible node" of the advertisements selecting the Service,
its policy (whether a node's own advertisements conflict, or its sessions are
up, only that node's /status says).

The document has the /status shape (see `supervisor.serving.http`) plus two
fields a live node may also send: `requested` (what the Service asked for)
and `advertisements` (the advertisements covering its pool and selecting the
Service, per protocol).
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from supervisor.allocating.results import AllocationResult
from supervisor.config.model import Config, L2Advertisement, LabelSelector, Service, ServiceKey
from supervisor.electing.election import (
    NO_BGP_SERVICE_MATCH,
    NO_SERVICE_MATCH,
    SHARED_WITH_SELECTOR,
    elect_layer2,
    eligibility,
    preferred_scores,
    rank,
)
from supervisor.serving.documents import counts_document, service_document


def offline_status(
    config: Config, result: AllocationResult, *, origin: str, members: frozenset[str] | None = None
) -> dict[str, Any]:
    """The /status a node would serve for `config`; `members` defaults to every Node in it."""
    alive = frozenset(n.name for n in config.nodes) if members is None else members
    keys = sorted(set(result.assignments) | set(result.pending))
    by_key = config.services_by_key()
    services = [_service(config, result, key, alive, by_key.get(key)) for key in keys]
    return {
        "node": "<offline>",
        "mode": "offline",
        "version": "",
        "config": {"origin": origin, "generation": 0, "loaded": True, "stale": False, "errors": [],
                   "warnings": list(result.warnings)},
        "pools": [_pool(config, counts.pool, counts) for counts in result.pools],
        "services": services,
        "announcements": [
            {"service": s["namespace"] + "/" + s["name"], "ip": s["ips"][0], "protocol": protocol, "node": node,
             "interfaces": [], "reason": "offline: computed, not announced"}
            for s in services for protocol, nodes in s["announced"].items() for node in nodes
        ],
        "members": [{"name": n.name, "alive": n.name in alive, "last_heard_seconds": None, "digest_mismatch": []}
                    for n in config.nodes],
        "workers": [],
        "plugins": {},
    }


def _pool(config: Config, name: str, counts: Any) -> dict[str, Any]:
    pool = config.pool(name)
    return {
        "name": name,
        "addresses": [r.text for r in pool.addresses] if pool else [],
        **counts_document(counts),
    }


def _service(config: Config, result: AllocationResult, key: ServiceKey, alive: frozenset[str],
             service: Service | None) -> dict[str, Any]:
    assignment = result.assignments.get(key)
    entry: dict[str, Any] = {
        **service_document(result, key),
        "announced": {},
        "elections": {},
        "requested": _requested(service),
        "advertisements": {},
    }
    if assignment is None or service is None or not assignment.ips:
        return entry
    l2 = config.l2_advertisements_for_service(assignment.pool, service)
    bgp = config.bgp_advertisements_for_service(assignment.pool, service)
    entry["advertisements"] = {"layer2": [a.name for a in l2], "bgp": [a.name for a in bgp]}
    first_ip = assignment.ips[0]
    unselected = _layer2_refusal(config, service, assignment.pool, l2)
    if unselected:
        entry["elections"]["layer2"] = {"winner": None, "ranking": [], "excluded": [], "not_served": unselected}
    elif l2:
        eligible = eligibility(config, service, node_selectors=_union(a.node_selectors for a in l2), members=alive)
        election = elect_layer2(eligible, first_ip, preferred_scores(config, l2))
        entry["elections"]["layer2"] = {"winner": election.winner, "ranking": list(election.ranking),
                                        "excluded": [list(e) for e in election.excluded],
                                        "not_served": election.not_served}
        if election.winner:
            entry["announced"]["layer2"] = [election.winner]
    if not bgp and config.bgp_advertisements_for(assignment.pool):
        entry["elections"]["bgp"] = {"winner": None, "ranking": [], "excluded": [],
                                     "not_served": NO_BGP_SERVICE_MATCH.format(pool=assignment.pool)}
    elif bgp:
        eligible = eligibility(config, service, node_selectors=_union(a.node_selectors for a in bgp), members=alive)
        entry["elections"]["bgp"] = {"winner": None, "ranking": list(rank(eligible.candidates, first_ip)),
                                     "excluded": [list(e) for e in eligible.excluded],
                                     "not_served": eligible.not_served}
        if eligible.candidates:
            entry["announced"]["bgp"] = sorted(eligible.candidates)
    return entry


def _layer2_refusal(config: Config, service: Service, pool: str, l2: tuple[L2Advertisement, ...]) -> str | None:
    """Why layer 2 announces the Service nowhere although advertisements cover its pool (MetalLB's rules)."""
    if not config.l2_advertisements_for(pool):
        return None  # nothing covers the pool: `explain` says so from "advertisements"
    if not l2:
        return NO_SERVICE_MATCH.format(pool=pool)
    if service.sharing_key is not None and any(a.service_selectors for a in l2):
        return SHARED_WITH_SELECTOR
    return None


def _union(selector_lists: Any) -> tuple[LabelSelector, ...]:
    """The node selectors of several advertisements: one without selectors selects every node."""
    union: list[LabelSelector] = []
    for selectors in selector_lists:
        if not selectors:
            return ()
        union.extend(selectors)
    return tuple(union)


def _requested(service: Service | None) -> dict[str, Any]:
    if service is None:
        return {}
    return {
        "ips": [str(ip) for ip in service.requested_ips],
        "pool": service.requested_pool,
        "status_ips": [str(ip) for ip in service.status_ips],
        "sharing_key": service.sharing_key,
        "external_traffic_policy": service.external_traffic_policy.value,
    }
