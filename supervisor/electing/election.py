"""Who may announce a Service, and who does: eligibility facts and MetalLB's ranking.

Pure: every speaker calls this with the same facts and gets the same answer, so
no leader or consensus is needed. The host computes eligibility (which nodes
*may* announce: alive, selected, not excluded, hosting an endpoint for
`externalTrafficPolicy: Local`); an announcer plugin applies its own policy on
top: layer 2 takes `ranking[0]` only, BGP takes every candidate.

The ranking is MetalLB's own (speaker/layer2_controller.go): candidates sorted
by `sha256(nodeName + "#" + firstIP)` as hex strings, so a cluster mixing
metalloid and MetalLB speakers agrees on the winner.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from supervisor.config.model import (
    EXCLUDE_FROM_LB_LABEL,
    Config,
    ExternalTrafficPolicy,
    IPAddress,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Eligibility:
    """The candidates for one Service and why every other node is not one."""

    service: ServiceKey
    candidates: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Election:
    """A layer 2 decision: the ranked candidates; `winner` is the first, if any."""

    service: ServiceKey
    ip: IPAddress
    ranking: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...] = field(default=())

    @property
    def winner(self) -> str | None:
        return self.ranking[0] if self.ranking else None


def rank(candidates: tuple[str, ...] | list[str] | frozenset[str], first_ip: IPAddress) -> tuple[str, ...]:
    """Order nodes by MetalLB's hash: sha256("<node>#<ip>") hex digest, ascending."""
    ip_text = str(first_ip)
    return tuple(sorted(candidates, key=lambda node: hashlib.sha256(f"{node}#{ip_text}".encode()).hexdigest()))


def nodes_with_local_endpoint(config: Config, service: ServiceKey) -> frozenset[str] | None:
    """Nodes hosting a ready, serving endpoint of `service`; None when no slice is known.

    None (unknown) differs from the empty set (known: no endpoint anywhere):
    a Service with known, empty endpoints is announced nowhere.
    """
    slices = [s for s in config.endpoint_slices if s.service_key == service]
    if not slices:
        return None
    # MetalLB counts `serving` endpoints (the parser falls back to `ready` when
    # the condition is absent), so a terminating endpoint that still serves
    # keeps its node a candidate: mixed clusters must pick the same winner.
    return frozenset(e.node_name for s in slices for e in s.endpoints if e.node_name and e.serving)


def eligibility(
    config: Config,
    service: Service,
    *,
    node_selectors: tuple[LabelSelector, ...],
    members: frozenset[str],
) -> Eligibility:
    """Which nodes may announce `service`, given the nodeSelectors that apply.

    `node_selectors` are the union of the selectors of the advertisements that
    cover the Service's pool (an advertisement without selectors selects all).
    `members` are the nodes membership currently sees alive.
    """
    local = None
    if service.external_traffic_policy is ExternalTrafficPolicy.LOCAL:
        local = nodes_with_local_endpoint(config, service.key)
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


def elect_layer2(eligible: Eligibility, first_ip: IPAddress) -> Election:
    """Layer 2 policy: exactly one node, the first in MetalLB's ranking."""
    return Election(
        service=eligible.service,
        ip=first_ip,
        ranking=rank(eligible.candidates, first_ip),
        excluded=eligible.excluded,
    )
