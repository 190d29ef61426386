"""FRR's configuration for a BGP plan, as a pure function (text in, text out, no I/O).

The facts follow MetalLB's FRR mode (internal/bgp/frr): one `router bgp` per
VRF, a neighbor per BGPPeer with its timers, password, multihop, update
source, BFD and graceful restart; every advertised prefix a `network`
statement (import check off, so FRR advertises a prefix no local route
covers); per neighbor an outbound route-map that lets out only that
neighbor's prefixes and sets their local preference and (large) communities,
and an inbound route-map that accepts nothing (a speaker does not route);
one `bfd` block with the BFDProfiles the peers name. A neighbor is activated
in its own address's family only (both with dualStackAddressFamily, and for
an unnumbered `neighbor IFACE interface`), with localASN as `local-as N
no-prepend replace-as`, as MetalLB does.

Where it departs from MetalLB: MetalLB selects each neighbor's prefixes with
a prefix-list entry per prefix, and FRR 8.4 applies prefix-list entries
slowly (each is a northbound transaction; ~100 ms apiece at 1,000 entries on
the lab VM, against ~2 ms for a `network` line). Here a prefix's `network`
statement carries a route-map that sets a route tag (local to this FRR, never
sent to a peer) naming the prefix's signature -- which peers get it, with
which local preference and communities -- and each neighbor's outbound
route-map matches the tags of its signatures. A Service is then one line,
and a tag is a hash of its signature, so adding one never renumbers others.

The output is deterministic (sorted everywhere) so that an unchanged plan
renders byte-identical text and the plugin reloads FRR only on change.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plugins.bgp.planning import IPNetwork, Plan, Route, Session
from supervisor.api import Config

LARGE = "large:"
_MAX_TAG = 4294967295  # route tags are 32 bits, 0 is "no tag"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """The configuration text, and which peers could not be configured (with why)."""

    text: str
    skipped: tuple[tuple[str, str], ...] = ()


def _name(text: str) -> str:
    """A route-map / prefix-list name FRR accepts, from a peer's name."""
    return _UNSAFE.sub("_", text)


def _seconds(value: float) -> int:
    return round(value)


def _remote_as(session: Session) -> str:
    return session.dynamic_asn if session.peer_asn == 0 and session.dynamic_asn else str(session.peer_asn)


def _neighbor_lines(session: Session, password: str | None, bfd_profiles: frozenset[str]) -> list[str]:
    n = f" neighbor {session.neighbor}"
    # Unnumbered (MetalLB's `neighbor IFACE interface remote-as`): FRR finds the router on the link.
    lines = [f"{n} interface remote-as {_remote_as(session)}" if session.interface
             else f"{n} remote-as {_remote_as(session)}"]
    if session.peer_port != 179:
        lines.append(f"{n} port {session.peer_port}")
    if session.ebgp_multihop:
        lines.append(f"{n} ebgp-multihop")
    if session.local_asn is not None:
        # MetalLB's form: the peer sees only local_asn, in the OPEN and in the AS path.
        lines.append(f"{n} local-as {session.local_asn} no-prepend replace-as")
    if session.source_address is not None:
        lines.append(f"{n} update-source {session.source_address}")
    lines.append(f"{n} timers {_seconds(session.keepalive_time_seconds)} {_seconds(session.hold_time_seconds)}")
    if session.connect_time_seconds is not None:
        lines.append(f"{n} timers connect {_seconds(session.connect_time_seconds)}")
    if password:
        lines.append(f"{n} password {password}")
    if session.bfd_profile:
        lines.append(f"{n} bfd")
        if session.bfd_profile in bfd_profiles:
            lines.append(f"{n} bfd profile {session.bfd_profile}")
    if session.graceful_restart:
        lines.append(f"{n} graceful-restart")
    if _disable_connected_check(session):
        lines.append(f"{n} disable-connected-check")
    return lines


def _disable_connected_check(session: Session) -> bool:
    """MetalLB's rule: an IPv6-only single-hop eBGP session skips FRR's connected check (the
    peer's global IPv6 address need not be on a connected subnet of this node)."""
    if session.families != (6,) or session.ebgp_multihop or session.interface:
        return False
    if session.dynamic_asn:
        return session.dynamic_asn == "external"
    return session.peer_asn != session.my_asn


def _family(version: int) -> str:
    return "ipv4" if version == 4 else "ipv6"


def _split(communities: tuple[str, ...]) -> tuple[list[str], list[str]]:
    standard = [c for c in communities if not c.startswith(LARGE)]
    large = [c.removeprefix(LARGE) for c in communities if c.startswith(LARGE)]
    return standard, large


Treatment = tuple[int | None, tuple[str, ...]]  # (local preference, communities) for one peer
Signature = tuple[tuple[str, int | None, tuple[str, ...]], ...]  # every (peer, local pref, communities) of a prefix


def _treatment_order(treatment: Treatment) -> tuple[int, tuple[str, ...]]:
    local_pref, communities = treatment
    return (-1 if local_pref is None else local_pref, communities)


def _signatures(sessions: list[Session], routes_of: Mapping[str, list[Route]]) -> dict[IPNetwork, Signature]:
    """Each prefix of these sessions with how every peer gets it. A prefix two advertisements
    give one peer differently gets the lower (local preference, communities)."""
    treatments: dict[IPNetwork, dict[str, Treatment]] = {}
    for session in sessions:
        for route in routes_of.get(session.peer, []):
            treatment = (route.local_pref, route.communities)
            held = treatments.setdefault(route.prefix, {})
            current = held.get(session.peer)
            if current is None or _treatment_order(treatment) < _treatment_order(current):
                held[session.peer] = treatment
    return {prefix: tuple(sorted((peer, lp, c) for peer, (lp, c) in held.items()))
            for prefix, held in treatments.items()}


def _tags(signatures: Iterable[Signature]) -> dict[Signature, int]:
    """A route tag per signature, from a hash of it: the same signature keeps its tag whatever
    else changes, so a new Service is one `network` line, never a renumbering."""
    tags: dict[Signature, int] = {}
    used: set[int] = set()
    for signature in sorted(set(signatures), key=repr):
        tag = int.from_bytes(hashlib.sha256(repr(signature).encode()).digest()[:4], "big") or 1
        while tag in used:  # a collision: the next free one, in a stable order
            tag = tag % _MAX_TAG + 1
        used.add(tag)
        tags[signature] = tag
    return tags


def _tag_map(tag: int) -> str:
    return f"metalloid-tag-{tag}"


def _origination(tags: Mapping[Signature, int]) -> list[str]:
    """One route-map per tag for the `network` statements: it only sets the (local) tag."""
    lines: list[str] = []
    for tag in sorted(tags.values()):
        lines += [f"route-map {_tag_map(tag)} permit 10", f" set tag {tag}", "exit", "!"]
    return lines


def _policy(session: Session, tags: Mapping[Signature, int]) -> list[str]:
    """The out and in route-maps of one neighbor: out lets through the tags of its prefixes,
    setting their local preference and (large) communities; everything else is denied."""
    peer = _name(session.peer)
    mine = sorted((tag, entry) for signature, tag in tags.items() for entry in signature if entry[0] == session.peer)
    lines: list[str] = []
    for index, (tag, (_, local_pref, communities)) in enumerate(mine, start=1):
        lines += [f"route-map metalloid-{peer}-out permit {index * 10}", f" match tag {tag}"]
        if local_pref is not None:
            lines.append(f" set local-preference {local_pref}")
        standard, large = _split(communities)
        if standard:
            lines.append(f" set community {' '.join(standard)} additive")
        if large:
            lines.append(f" set large-community {' '.join(large)} additive")
        lines += ["exit", "!"]
    # An outbound map with no permit entry denies everything: a peer with no routes gets none.
    if not mine:
        lines += [f"route-map metalloid-{peer}-out deny 10", "exit", "!"]
    lines += [f"route-map metalloid-{peer}-in deny 10", "exit", "!"]
    return lines


def _bfd(config: Config, names: Iterable[str]) -> list[str]:
    profiles = {p.name: p for p in config.bfd_profiles}
    lines: list[str] = []
    for name in sorted(set(names)):
        profile = profiles.get(name)
        if profile is None:
            continue
        lines.append(f" profile {name}")
        if profile.receive_interval is not None:
            lines.append(f"  receive-interval {profile.receive_interval}")
        if profile.transmit_interval is not None:
            lines.append(f"  transmit-interval {profile.transmit_interval}")
        if profile.detect_multiplier is not None:
            lines.append(f"  detect-multiplier {profile.detect_multiplier}")
        if profile.echo_mode:
            lines.append("  echo-mode")
        if profile.echo_interval is not None:
            lines.append(f"  echo-interval {profile.echo_interval}")
        if profile.passive_mode:
            lines.append("  passive-mode")
        if profile.minimum_ttl is not None:
            lines.append(f"  minimum-ttl {profile.minimum_ttl}")
        lines.append(" exit")
        lines.append(" !")
    if not lines:
        return []
    return ["bfd", *lines, "exit", "!"]


def render(plan: Plan, config: Config, *, hostname: str, passwords: Mapping[str, str] | None = None,
           log_file: str | None = None) -> Rendered:
    """The whole FRR configuration for `plan` (every session, every route).

    `passwords`: peer name -> the password resolved from its passwordSecret
    (the session's own `password` wins when both exist; parsing forbids both).
    """
    passwords = passwords or {}
    skipped: list[tuple[str, str]] = []
    bfd_names = frozenset(p.name for p in config.bfd_profiles)
    lines = ["frr defaults traditional", f"hostname {hostname}"]
    if log_file:
        lines.append(f"log file {log_file}")
    lines += ["service integrated-vtysh-config", "!"]
    by_vrf: dict[str, list[Session]] = {}
    for session in plan.sessions:
        by_vrf.setdefault(session.vrf, []).append(session)
    routes_of: dict[str, list[Route]] = {}
    for route in plan.routes:
        routes_of.setdefault(route.peer, []).append(route)
    kept_by_vrf: dict[str, list[Session]] = {}
    for vrf in sorted(by_vrf):
        sessions = by_vrf[vrf]
        my_asn = sessions[0].my_asn
        for session in sessions:
            if session.my_asn != my_asn:
                skipped.append((session.peer, f"myASN {session.my_asn} differs from {my_asn} of BGPPeer "
                                              f"{sessions[0].peer} in the same VRF; FRR runs one AS per VRF"))
            elif session.password_secret is not None and not session.password and session.peer not in passwords:
                skipped.append((session.peer, f"spec.passwordSecret {'/'.join(session.password_secret)} "
                                              "could not be read"))
            else:
                kept_by_vrf.setdefault(vrf, []).append(session)
    signatures = {vrf: _signatures(kept, routes_of) for vrf, kept in kept_by_vrf.items()}
    tags = _tags(sig for by_prefix in signatures.values() for sig in by_prefix.values())
    policies: list[str] = []
    routers: list[str] = []
    for vrf, kept in kept_by_vrf.items():
        routers.append(f"router bgp {kept[0].my_asn}" + (f" vrf {vrf}" if vrf else ""))
        router_id = next((s.router_id for s in kept if s.router_id), None)
        routers += [" no bgp ebgp-requires-policy", " no bgp network import-check", " no bgp default ipv4-unicast"]
        if router_id:
            routers.append(f" bgp router-id {router_id}")
        if any(s.graceful_restart for s in kept):
            routers.append(" bgp graceful-restart")
        for session in kept:
            routers += _neighbor_lines(session, session.password or passwords.get(session.peer), bfd_names)
            policies += _policy(session, tags)
        for version in (4, 6):
            active = [s for s in kept if version in s.families]
            if not active:
                continue
            wanted = {r.prefix for s in active for r in routes_of.get(s.peer, []) if r.prefix.version == version}
            prefixes = sorted(wanted, key=lambda p: (int(p.network_address), p.prefixlen))
            routers += [" !", f" address-family {_family(version)} unicast"]
            routers += [f"  network {p} route-map {_tag_map(tags[signatures[vrf][p]])}" for p in prefixes]
            for session in active:
                n = f"  neighbor {session.neighbor}"
                routers += [f"{n} activate", f"{n} route-map metalloid-{_name(session.peer)}-in in",
                            f"{n} route-map metalloid-{_name(session.peer)}-out out"]
            routers.append(" exit-address-family")
        routers += ["exit", "!"]
    bfd = _bfd(config, (s.bfd_profile for s in plan.sessions if s.bfd_profile))
    text = "\n".join(lines + _origination(tags) + policies + routers + bfd) + "\n"
    return Rendered(text=text, skipped=tuple(skipped))


def prefixes_of(plan: Plan) -> frozenset[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return frozenset(r.prefix for r in plan.routes)
