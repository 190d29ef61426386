"""Who may announce a Service, and who does: eligibility facts and MetalLB's ranking.

Pure: every speaker calls this with the same facts and gets the same answer, so
no leader or consensus is needed. The host computes eligibility (which nodes
*may* announce: alive, selected, not excluded, hosting an endpoint for
`externalTrafficPolicy: Local`); an announcer plugin applies its own policy on
top: layer 2 takes `ranking[0]` only, BGP takes every candidate.

The ranking is MetalLB's own (speaker/layer2_controller.go): candidates sorted
by the preference score of the advertisements' `preferredNodeSelectors`
(highest first), then by `sha256(nodeName + "#" + firstIP)` as hex strings,
so a cluster mixing metalloid and MetalLB speakers agrees on the winner.

A Service without a serving endpoint has no candidate at all, whatever its
traffic policy (MetalLB's `activeEndpointExists` runs before anything else).
An endpoint can serve when its `ready` condition is absent or true, or its
`serving` condition is true (epslices `EndpointCanServe`: a terminating pod
that still serves counts). In Kubernetes the EndpointSlices are complete
(`Config.endpoints_listed`); in a config file a Service whose EndpointSlices
are not listed at all is served by the host, which is what a keepalived user,
who lists none, expects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from supervisor.config.model import (
    EXCLUDE_FROM_LB_LABEL,
    Config,
    Endpoint,
    EndpointSlice,
    ExternalTrafficPolicy,
    IPAddress,
    L2Advertisement,
    LabelSelector,
    Service,
    ServiceKey,
    any_selector_matches,
)

# Reasons a node is not a candidate, as short values that /status and
# `metalloid explain` print verbatim.
NOT_A_MEMBER = "not alive in membership (no heartbeat within the deadline)"
EXCLUDED_LABEL = f"labelled {EXCLUDE_FROM_LB_LABEL}"
NETWORK_UNAVAILABLE = "condition NetworkUnavailable is true"
NOT_SELECTED = "not selected by the nodeSelectors of any advertisement for the pool"
NO_LOCAL_ENDPOINT = "externalTrafficPolicy is Local and it hosts no serving endpoint"
NO_SERVING_ENDPOINT = (
    "the Service has no serving endpoint (no endpoint in its EndpointSlices is ready or serving); "
    "MetalLB announces a Service only while at least one endpoint can serve it"
)
# Layer 2 only (MetalLB's serviceSelectors rules), shared by the layer 2 plugin and offline `explain`.
NO_SERVICE_MATCH = (
    "no L2Advertisement for pool {pool} selects this Service: their spec.serviceSelectors do not match its "
    "labels; add a matching label or an advertisement without serviceSelectors"
)
# BGP's (MetalLB's `noMatchingAdvertisement`), shared by the bgp plugins and offline `explain`.
NO_BGP_SERVICE_MATCH = (
    "no BGPAdvertisement for pool {pool} selects this Service: their spec.serviceSelectors do not match its "
    "labels; add a matching label or an advertisement without serviceSelectors"
)
SHARED_WITH_SELECTOR = (
    "metallb.io/allow-shared-ip cannot be used with an L2Advertisement that has spec.serviceSelectors "
    "(MetalLB's rule); remove the annotation or the advertisement's serviceSelectors"
)
NO_ENDPOINT_SLICE = (
    "the Service has no EndpointSlice, so no endpoint can serve it; "
    "MetalLB announces a Service only while at least one endpoint can serve it"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Eligibility:
    """The candidates for one Service and why every other node is not one."""

    service: ServiceKey
    candidates: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...] = ()
    # Why no node at all may announce it (e.g. no serving endpoint), else None.
    not_served: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Election:
    """A layer 2 decision: the ranked candidates; `winner` is the first, if any."""

    service: ServiceKey
    ip: IPAddress
    ranking: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...] = field(default=())
    not_served: str | None = None

    @property
    def winner(self) -> str | None:
        return self.ranking[0] if self.ranking else None


def rank(
    candidates: tuple[str, ...] | list[str] | frozenset[str],
    first_ip: IPAddress,
    scores: Mapping[str, int] | None = None,
) -> tuple[str, ...]:
    """MetalLB's `sortL2Candidates`: highest preference score first, then sha256("<node>#<ip>") ascending."""
    ip_text = str(first_ip)
    weights = scores or {}
    return tuple(sorted(
        candidates,
        key=lambda node: (-weights.get(node, 0), hashlib.sha256(f"{node}#{ip_text}".encode()).hexdigest()),
    ))  # fmt: skip


def preferred_scores(config: Config, advertisements: tuple[L2Advertisement, ...]) -> dict[str, int]:
    """MetalLB's `preferredScoresFor`: per node, the weights of every matching preference, summed over the
    advertisements, each counting only the nodes its own nodeSelectors select."""
    scores: dict[str, int] = {}
    for advertisement in advertisements:
        if not advertisement.preferred_node_selectors:
            continue
        for node in config.nodes:
            labels = node.label_map()
            if not any_selector_matches(advertisement.node_selectors, labels):
                continue
            weight = sum(p.weight for p in advertisement.preferred_node_selectors if p.preference.matches(labels))
            if weight:
                scores[node.name] = scores.get(node.name, 0) + weight
    return scores


def endpoint_can_serve(endpoint: Endpoint) -> bool:
    """epslices `EndpointCanServe`: ready (or no ready condition), or serving."""
    return endpoint.ready or endpoint.serving


SlicesByService = Mapping[ServiceKey, tuple[EndpointSlice, ...]]


def _slices_of(config: Config, service: ServiceKey, slices: SlicesByService | None) -> tuple[EndpointSlice, ...]:
    if slices is not None:
        return slices.get(service, ())
    return tuple(s for s in config.endpoint_slices if s.service_key == service)


def serving_nodes(config: Config, service: ServiceKey, *,
                  slices: SlicesByService | None = None) -> frozenset[str] | None:
    """Nodes hosting an endpoint of `service` that can serve; None when the Service counts as served.

    None: no EndpointSlice of the Service is listed and the config does not
    list them all (a file), so the host serves it. An empty set: nothing can
    serve it. An endpoint without a node can serve but counts for no node.
    `slices`: `config.endpoint_slices_by_service()`, from a caller that asks
    for many Services (else every call scans every slice).
    """
    found = _slices_of(config, service, slices)
    if not found and not config.endpoints_listed:
        return None
    return frozenset(e.node_name or "" for s in found for e in s.endpoints if endpoint_can_serve(e))


def _not_served(config: Config, service: ServiceKey, serving: frozenset[str] | None,
                slices: SlicesByService | None) -> str | None:
    if serving is None or serving:
        return None
    if _slices_of(config, service, slices):
        return NO_SERVING_ENDPOINT
    return NO_ENDPOINT_SLICE


def eligibility(
    config: Config,
    service: Service,
    *,
    node_selectors: tuple[LabelSelector, ...],
    members: frozenset[str],
    slices: SlicesByService | None = None,
) -> Eligibility:
    """Which nodes may announce `service`, given the nodeSelectors that apply.

    `node_selectors` are the union of the selectors of the advertisements that
    cover the Service's pool (an advertisement without selectors selects all).
    `members` are the nodes membership currently sees alive. `slices`: see
    `serving_nodes` (planners electing every Service pass it).
    """
    serving = serving_nodes(config, service.key, slices=slices)
    not_served = _not_served(config, service.key, serving, slices)
    if not_served is not None:
        return Eligibility(service=service.key, candidates=(), not_served=not_served)
    local = serving if service.external_traffic_policy is ExternalTrafficPolicy.LOCAL else None
    candidates: list[str] = []
    excluded: list[tuple[str, str]] = []
    for node in sorted(config.nodes, key=lambda n: n.name):
        labels = node.label_map()
        reason = None
        if node.name not in members:
            reason = NOT_A_MEMBER
        elif EXCLUDE_FROM_LB_LABEL in labels:
            reason = EXCLUDED_LABEL
        elif node.network_unavailable:
            reason = NETWORK_UNAVAILABLE
        elif not any_selector_matches(node_selectors, labels):
            reason = NOT_SELECTED
        elif local is not None and node.name not in local:
            reason = NO_LOCAL_ENDPOINT
        if reason is None:
            candidates.append(node.name)
        else:
            excluded.append((node.name, reason))
    return Eligibility(service=service.key, candidates=tuple(candidates), excluded=tuple(excluded))


def elect_layer2(eligible: Eligibility, first_ip: IPAddress, scores: Mapping[str, int] | None = None) -> Election:
    """Layer 2 policy: exactly one node, the first in MetalLB's ranking (`scores`: `preferred_scores`)."""
    return Election(
        service=eligible.service,
        ip=first_ip,
        ranking=rank(eligible.candidates, first_ip, scores),
        excluded=eligible.excluded,
        not_served=eligible.not_served,
    )
