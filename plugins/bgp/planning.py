"""BGP's policy as a pure function: which prefixes this node advertises to which peer.

Everything a BGP speaker needs is computed here from the host's facts
(`AnnouncerView`): the sessions (peer address and port, both ASNs or the
dynamic ASN, router id, source address, hold, keepalive and connect times,
password, multihop, BFD profile, graceful restart, VRF) and, per session, the
routes (prefix after aggregation, next hop, local preference, communities, the
services behind it; only the session's address families: the peer address's
family, both with dualStackAddressFamily or over an interface). Shared by the `bgp` plugin (which renders them as FRR
configuration) and the `bgp_stub` reference plugin (which records them). No I/O here.

MetalLB's BGP rules kept: every eligible node announces (no election); an
advertisement's nodeSelectors and a peer's nodeSelectors both restrict; an
advertisement with serviceSelectors carries only the Services they match
(`bgpAdsForService`: a Service no advertisement of its pool selects is not
advertised, and two selecting it with conflicting localPref keep it off this
node, `checkBGPAdvConflicts`); an advertisement naming `peers` goes only to
those; aggregationLength widens the prefix (a /24 aggregate for a /32 service IP).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from supervisor.api import (
    NO_BGP_SERVICE_MATCH,
    AnnouncerView,
    BGPAdvertisement,
    BGPPeer,
    Config,
    IPAddress,
    IPAddressPool,
    LabelSelector,
    ServiceKey,
    eligibility,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One BGP session this node would hold: all a speaker needs to open it."""

    peer: str
    # None for an unnumbered session over `interface` (FRR finds the router on that link).
    peer_address: IPAddress | None
    peer_port: int
    peer_asn: int
    my_asn: int
    router_id: str | None
    source_address: IPAddress | None
    hold_time_seconds: float
    keepalive_time_seconds: float
    password_set: bool
    ebgp_multihop: bool
    vrf: str
    dynamic_asn: str = ""  # "internal" / "external" when peer_asn is 0
    connect_time_seconds: float | None = None
    bfd_profile: str = ""
    graceful_restart: bool = False
    # (namespace, name) of spec.passwordSecret: the plugin resolves it.
    password_secret: tuple[str, str] | None = None
    password: str | None = field(default=None, repr=False)
    interface: str = ""
    local_asn: int | None = None
    # The address families this session exchanges routes of: its address's (MetalLB's default),
    # both with dualStackAddressFamily or over an interface (unnumbered, as MetalLB does).
    families: tuple[int, ...] = (4,)

    @property
    def neighbor(self) -> str:
        """FRR's name for the neighbor: the peer address, or the interface of an unnumbered session."""
        return self.interface or str(self.peer_address)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One prefix advertised to one peer."""

    peer: str
    prefix: IPNetwork
    next_hop: IPAddress | None
    local_pref: int | None
    communities: tuple[str, ...]
    services: tuple[ServiceKey, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    sessions: tuple[Session, ...]
    routes: tuple[Route, ...]
    # service -> why it is not advertised by this node (for explain)
    not_advertised: tuple[tuple[ServiceKey, str], ...]


def _selected(selectors: tuple[LabelSelector, ...], labels: dict[str, str]) -> bool:
    return not selectors or any(s.matches(labels) for s in selectors)


def sessions_for(view: AnnouncerView) -> tuple[Session, ...]:
    node = view.config.node(view.node_name)
    labels = node.label_map() if node else {}
    return tuple(
        Session(
            peer=p.name,
            peer_address=p.peer_address,
            peer_port=p.peer_port,
            peer_asn=p.peer_asn,
            my_asn=p.my_asn,
            router_id=p.router_id,
            source_address=p.source_address,
            hold_time_seconds=p.hold_time_seconds,
            # BGP's default: a third of the hold time (RFC 4271 suggests it).
            keepalive_time_seconds=p.keepalive_time_seconds or p.hold_time_seconds / 3,
            password_set=bool(p.password) or p.password_secret is not None,
            ebgp_multihop=p.ebgp_multihop,
            vrf=p.vrf,
            dynamic_asn=p.dynamic_asn,
            connect_time_seconds=p.connect_time_seconds,
            bfd_profile=p.bfd_profile,
            graceful_restart=p.enable_graceful_restart,
            password_secret=p.password_secret,
            password=p.password,
            interface=p.interface,
            local_asn=p.local_asn,
            families=_families(p),
        )
        for p in sorted(view.config.bgp_peers, key=lambda p: p.name)
        if _selected(p.node_selectors, labels)
    )


def _families(peer: BGPPeer) -> tuple[int, ...]:
    if peer.interface or peer.dual_stack_address_family or peer.peer_address is None:
        return (4, 6)
    return (peer.peer_address.version,)


def _prefix(ip: IPAddress, adv: BGPAdvertisement) -> IPNetwork:
    length = adv.aggregation_length if ip.version == 4 else adv.aggregation_length_v6
    return ipaddress.ip_network(f"{ip}/{length}", strict=False)


def _next_hop(view: AnnouncerView, peer: BGPPeer, version: int) -> IPAddress | None:
    if peer.source_address is not None and peer.source_address.version == version:
        return peer.source_address
    node = view.config.node(view.node_name)
    return next((a for a in (node.addresses if node else ()) if a.version == version), None)


def _communities(config: Config, adv: BGPAdvertisement) -> tuple[str, ...]:
    """The advertisement's communities as values, Community aliases resolved (an
    unknown alias stays as written; validation warns about it)."""
    aliases = {a.name: a.value for c in config.communities for a in c.aliases}
    return tuple(sorted({aliases.get(c, c) for c in adv.communities}))


def aggregation_differs(a: BGPAdvertisement, b: BGPAdvertisement, pool: IPAddressPool | None) -> bool:
    """MetalLB's `isAggrLengthDifferent`: the two make different prefixes for every family the pool has."""
    families = pool.families() if pool is not None else frozenset()
    if not families:
        return True
    v4 = a.aggregation_length != b.aggregation_length
    v6 = a.aggregation_length_v6 != b.aggregation_length_v6
    if families == {4}:
        return v4
    if families == {6}:
        return v6
    return v4 and v6


def local_prefs_collide(a: BGPAdvertisement, b: BGPAdvertisement, pool: IPAddressPool | None) -> bool:
    """MetalLB's `BGPAdvertisementsHaveCompatibleLocalPref`, negated, without its node test: a different
    localPref (unset is 0) for the same prefix sent to a common peer (no peers: every peer)."""
    if (a.local_pref or 0) == (b.local_pref or 0) or aggregation_differs(a, b, pool):
        return False
    return not (a.peers and b.peers and not set(a.peers) & set(b.peers))


def conflicting(advs: list[BGPAdvertisement], pool: IPAddressPool | None) -> str | None:
    """Why this node may not advertise a Service through `advs` (the advertisements selecting both
    it and this node), or None: MetalLB's `checkBGPAdvConflicts`, two of them giving the same prefix
    to a common peer with different localPref (unset is 0). A pair where neither has serviceSelectors
    never gets here: the config is refused (validation.py, MetalLB's webhook rule)."""
    for i, a in enumerate(advs):
        for b in advs[i + 1:]:
            if not (a.service_selectors or b.service_selectors) or not local_prefs_collide(a, b, pool):
                continue
            return (f"BGPAdvertisements {a.name} and {b.name} both select it and this node with different localPref "
                    f"({a.local_pref or 0} vs {b.local_pref or 0}) for the same prefix and peers; MetalLB refuses "
                    "to advertise it (conflictingAdvertisements): give them the same localPref, different "
                    "peers, or serviceSelectors that do not both match")
    return None


def plan(view: AnnouncerView) -> Plan:
    """The sessions and routes this node would have for `view`."""
    config = view.config
    sessions = sessions_for(view)
    peers = {p.name: p for p in config.bgp_peers}
    merged: dict[tuple[str, IPNetwork, int | None, tuple[str, ...]], list[ServiceKey]] = {}
    skipped: list[tuple[ServiceKey, str]] = []
    by_key = config.services_by_key()
    slices = config.endpoint_slices_by_service()
    for assignment in sorted(view.assignments, key=lambda a: a.service):
        service = by_key.get(assignment.service)
        if service is None:
            continue
        if not config.bgp_advertisements_for(assignment.pool):
            skipped.append((assignment.service, f"no BGPAdvertisement covers pool {assignment.pool}"))
            continue
        advs = config.bgp_advertisements_for_service(assignment.pool, service)
        if not advs:
            skipped.append((assignment.service, NO_BGP_SERVICE_MATCH.format(pool=assignment.pool)))
            continue
        mine: list[BGPAdvertisement] = []
        for adv in advs:
            eligible = eligibility(config, service, node_selectors=adv.node_selectors, members=view.members,
                                   slices=slices)
            if view.node_name not in eligible.candidates:
                reason = eligible.not_served or dict(eligible.excluded).get(view.node_name, "not a candidate")
                skipped.append((assignment.service, f"BGPAdvertisement {adv.name}: {reason}"))
                continue
            mine.append(adv)
        conflict = conflicting(mine, config.pool(assignment.pool))
        if conflict is not None:
            skipped.append((assignment.service, conflict))
            continue
        advertised = False
        for adv in mine:
            for session in sessions:
                if adv.peers and session.peer not in adv.peers:
                    continue
                for ip in assignment.ips:
                    if ip.version not in session.families:
                        # MetalLB's FRR mode: a session carries its own family only, unless dual stack.
                        skipped.append((assignment.service, f"{ip} is IPv{ip.version}; BGPPeer {session.peer} "
                                                            f"carries IPv{session.families[0]} only (set "
                                                            "dualStackAddressFamily to send both)"))
                        continue
                    key = (session.peer, _prefix(ip, adv), adv.local_pref, _communities(config, adv))
                    merged.setdefault(key, []).append(assignment.service)
                    advertised = True
        if not advertised and not sessions:
            skipped.append((assignment.service, "no BGPPeer selects this node"))
    routes = tuple(
        Route(
            peer=peer,
            prefix=prefix,
            next_hop=_next_hop(view, peers[peer], prefix.version),
            local_pref=local_pref,
            communities=communities,
            services=tuple(sorted(set(services))),
        )
        for (peer, prefix, local_pref, communities), services in sorted(
            merged.items(), key=lambda kv: (kv[0][0], kv[0][1].version, str(kv[0][1]))
        )
    )
    return Plan(sessions=sessions, routes=routes, not_advertised=tuple(dict.fromkeys(skipped)))
