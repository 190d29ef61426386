"""Checks across objects: what MetalLB's webhooks reject, and what bites users.

Per-object problems (a malformed CIDR, a bad selector operator, a Service
setting both loadBalancerIP and the annotation) are found while parsing, where
the raw text is at hand. This module checks the parsed `Config` as a whole:

errors    overlapping addresses (within one pool or across pools), duplicate
          names, BGP aggregation lengths shorter than a pool's prefix;
warnings  things MetalLB silently accepts: an advertisement naming a missing
          pool, a pool no advertisement covers (its IPs would be assigned but
          never announced), a Service no pool can serve.

Pure: no I/O, and no enumeration of addresses, so a /8 or an IPv6 /64 costs
the same as a /24.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable, Sequence

from supervisor.config import lbclass
from supervisor.config.announcer_config import validate_announcer_configs
from supervisor.config.bgp_kinds import is_community_literal
from supervisor.config.core_kinds import ADDRESS_POOL, ANNOTATION_PREFIX, LEGACY_ANNOTATION_PREFIX, LOAD_BALANCER_IPS
from supervisor.config.diagnostics import Diagnostic, error, warning
from supervisor.config.model import (
    AddressRange,
    BGPAdvertisement,
    Config,
    IPAddress,
    IPAddressPool,
    IPFamilyPolicy,
    L2Advertisement,
    Service,
    Source,
    field_source,
)


def validate(config: Config) -> list[Diagnostic]:
    """Every cross-object problem of `config`, errors and warnings, in a stable order."""
    return [
        *_duplicates(config),
        *_overlaps(config.pools),
        *_advertisement_references(config),
        *_uncovered_pools(config),
        *_aggregation_lengths(config),
        *_bgp_references(config),
        *(d for service in config.services for d in _service_problems(config, service)),
        *validate_announcer_configs(config),
    ]


def _duplicates(config: Config) -> Iterable[Diagnostic]:
    groups: list[tuple[str, Sequence[tuple[str, str, Source]]]] = [
        ("IPAddressPool", [(p.namespace, p.name, p.source) for p in config.pools]),
        ("L2Advertisement", [(a.namespace, a.name, a.source) for a in config.l2_advertisements]),
        ("BGPPeer", [(p.namespace, p.name, p.source) for p in config.bgp_peers]),
        ("BGPAdvertisement", [(a.namespace, a.name, a.source) for a in config.bgp_advertisements]),
        ("Service", [(s.namespace, s.name, s.source) for s in config.services]),
        ("Node", [("", n.name, n.source) for n in config.nodes]),
        ("EndpointSlice", [(e.namespace, e.name, e.source) for e in config.endpoint_slices]),
        ("Namespace", [("", n.name, n.source) for n in config.namespaces]),
        ("BFDProfile", [(b.namespace, b.name, b.source) for b in config.bfd_profiles]),
        ("Community", [(c.namespace, c.name, c.source) for c in config.communities]),
    ]
    for kind, items in groups:
        first_seen: dict[tuple[str, str], Source] = {}
        for namespace, name, source in items:
            if name == "<unnamed>":
                continue
            first = first_seen.setdefault((namespace, name), source)
            if first is not source:
                shown = f"{namespace}/{name}" if kind in ("Service", "EndpointSlice") else name
                where = f" in namespace {namespace}" if namespace else ""
                yield error(source, kind, shown, f"a second {kind} named {name!r}{where} (the first is at {first}); "
                                                 "the later one would replace it, rename or remove one")


def address_source(pool: IPAddressPool, index: int) -> Source:
    """The line of `pool.addresses[index]`, when every entry parsed (else the pool's)."""
    paths = [p for p, _ in pool.field_lines if p.startswith("spec.addresses[")]
    if len(paths) != len(pool.addresses):
        return pool.source
    return field_source(pool.source, pool.field_lines, f"spec.addresses[{index}]")


def _overlaps(pools: Sequence[IPAddressPool]) -> Iterable[Diagnostic]:
    entries = sorted(
        ((r.version, int(r.first), int(r.last), pool, i) for pool in pools for i, r in enumerate(pool.addresses)),
        key=lambda e: (e[0], e[1], e[2]),
    )
    # Sweep in address order, remembering the entry reaching furthest: any entry
    # starting before that reach overlaps it. O(n log n) in the number of entries.
    widest: tuple[int, int, int, IPAddressPool, int] | None = None
    for entry in entries:
        version, first, last, pool, index = entry
        if widest is not None and widest[0] == version and first <= widest[2]:
            other_pool, other_index = widest[3], widest[4]
            mine, theirs = pool.addresses[index], other_pool.addresses[other_index]
            start = ipaddress.ip_address(first)
            end = ipaddress.ip_address(min(last, widest[2]))
            shared = str(start) if start == end else f"{start}-{end}"
            if other_pool is pool:
                where = f"entry {theirs.text!r} of the same pool (at {address_source(pool, other_index)})"
            else:
                where = (f"IPAddressPool/{other_pool.name} entry {theirs.text!r} "
                         f"(at {address_source(other_pool, other_index)})")
            yield error(address_source(pool, index), "IPAddressPool", pool.name,
                        f"address entry {mine.text!r} overlaps {where} on {shared}; an IP may belong to one "
                        "entry of one pool only, narrow or remove one of them")
        if widest is None or widest[0] != version or last > widest[2]:
            widest = entry


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"existing pools: {', '.join(names)}" if names else "there are no pools yet"


def _advertisement_references(config: Config) -> Iterable[Diagnostic]:
    pool_names = {p.name for p in config.pools}
    ads: list[tuple[str, L2Advertisement | BGPAdvertisement]] = [
        *(("L2Advertisement", a) for a in config.l2_advertisements),
        *(("BGPAdvertisement", a) for a in config.bgp_advertisements),
    ]
    for kind, ad in ads:
        for i, name in enumerate(ad.ip_address_pools):
            if name not in pool_names:
                yield warning(field_source(ad.source, ad.field_lines, f"spec.ipAddressPools[{i}]"), kind, ad.name,
                              f"spec.ipAddressPools names pool {name!r}, which does not exist, so nothing is "
                              f"announced for it; create the pool or fix the name ({_did_you_mean(name, pool_names)})")
        for selector in ad.ip_address_pool_selectors:
            if not any(selector.matches(p.labels) for p in config.pools):
                yield warning(field_source(ad.source, ad.field_lines, "spec.ipAddressPoolSelectors"), kind, ad.name,
                              "spec.ipAddressPoolSelectors has a selector matching no pool's labels; label the pool "
                              "or fix the selector")


def _uncovered_pools(config: Config) -> Iterable[Diagnostic]:
    for pool in config.pools:
        if not config.l2_advertisements_for(pool.name) and not config.bgp_advertisements_for(pool.name):
            yield warning(pool.source, "IPAddressPool", pool.name,
                          f"no L2Advertisement or BGPAdvertisement covers pool {pool.name!r}, so its IPs would be "
                          f"assigned but never announced; add an L2Advertisement with spec.ipAddressPools: "
                          f"[{pool.name}]")


def _aggregation_lengths(config: Config) -> Iterable[Diagnostic]:
    for ad in config.bgp_advertisements:
        for pool in config.pools:
            if pool not in [config.pool(pool.name)] or ad not in config.bgp_advertisements_for(pool.name):
                continue
            for address in pool.addresses:
                length, field = ((ad.aggregation_length, "aggregationLength") if address.version == 4
                                 else (ad.aggregation_length_v6, "aggregationLengthV6"))
                widest = min(c.prefixlen for c in _cidrs(address))
                if length < widest:
                    yield error(field_source(ad.source, ad.field_lines, f"spec.{field}"), "BGPAdvertisement",
                                ad.name, f"spec.{field} {length} is shorter than prefix /{widest} of pool "
                                         f"{pool.name!r} entry {address.text!r}; the route would cover addresses "
                                         f"outside the pool, use at least {widest}")


def _bgp_references(config: Config) -> Iterable[Diagnostic]:
    """Names BGP objects use for each other: BFD profiles and community aliases.

    A missing one is a warning, as MetalLB retries such a config (a
    "transient" error: the object may be created next); the same alias
    defined twice is an error, as in MetalLB.
    """
    profiles = {b.name for b in config.bfd_profiles}
    for peer in config.bgp_peers:
        if peer.bfd_profile and peer.bfd_profile not in profiles:
            yield warning(field_source(peer.source, peer.field_lines, "spec.bfdProfile"), "BGPPeer", peer.name,
                          f"spec.bfdProfile names BFDProfile {peer.bfd_profile!r}, which does not exist; MetalLB "
                          "would not configure this peer until it does, create it or remove the name")
    aliases: dict[str, str] = {}
    for community in config.communities:
        for alias in community.aliases:
            if alias.name in aliases:
                yield error(community.source, "Community", community.name,
                            f"alias {alias.name!r} is defined twice (also in Community/{aliases[alias.name]}); an "
                            "alias names one value, rename or remove one")
            aliases.setdefault(alias.name, community.name)
    for ad in config.bgp_advertisements:
        for i, name in enumerate(ad.communities):
            if not is_community_literal(name) and name not in aliases:
                yield warning(field_source(ad.source, ad.field_lines, f"spec.communities[{i}]"), "BGPAdvertisement",
                              ad.name, f"spec.communities names alias {name!r}, which no Community defines; MetalLB "
                                       "would not apply this advertisement until one does, create the Community "
                                       "or write the value (65535:65282)")


def _cidrs(address: AddressRange) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    first, last = address.first, address.last
    if isinstance(first, ipaddress.IPv4Address) and isinstance(last, ipaddress.IPv4Address):
        return list(ipaddress.summarize_address_range(first, last))
    if isinstance(first, ipaddress.IPv6Address) and isinstance(last, ipaddress.IPv6Address):
        return list(ipaddress.summarize_address_range(first, last))
    return []


def pool_admits(config: Config, pool: IPAddressPool, service: Service) -> bool:
    """MetalLB's serviceAllocation rule: may `service` take IPs from `pool` at all?"""
    allocation = pool.service_allocation
    if allocation is None:
        return True
    if allocation.namespaces or allocation.namespace_selectors:
        in_list = service.namespace in allocation.namespaces
        labels = config.namespace_labels(service.namespace)
        if not in_list and not any(s.matches(labels) for s in allocation.namespace_selectors):
            return False
    return not allocation.service_selectors or any(s.matches(service.labels) for s in allocation.service_selectors)


def _annotation_source(service: Service, suffix: str) -> Source:
    for prefix in (ANNOTATION_PREFIX, LEGACY_ANNOTATION_PREFIX):
        source = field_source(service.source, service.field_lines, f"metadata.annotations.{prefix}{suffix}")
        if source is not service.source:
            return source
    return service.source


def _service_problems(config: Config, service: Service) -> Iterable[Diagnostic]:
    # A file, or the Kubernetes watcher's config, which has only our Services, without their class.
    if not lbclass.is_ours(service, None):
        return
    shown = str(service.key)
    pools = {p.name: p for p in config.pools}
    if service.requested_pool is not None and service.requested_pool not in pools:
        yield warning(_annotation_source(service, ADDRESS_POOL), "Service", shown,
                      f"annotation {ANNOTATION_PREFIX}{ADDRESS_POOL} names pool {service.requested_pool!r}, which "
                      f"does not exist, so the Service stays pending; "
                      f"{_did_you_mean(service.requested_pool, pools)}")
        return
    if service.requested_ips:
        yield from _requested_ip_problems(config, service, shown)
        return
    candidates = [pools[service.requested_pool]] if service.requested_pool else list(config.pools)
    needed = _needed_families(service)
    for family in needed:
        reason = _family_reason(config, service, candidates, family)
        if reason is not None and (service.ip_family_policy is not IPFamilyPolicy.PREFER_DUAL_STACK
                                   or all(_family_reason(config, service, candidates, f) for f in needed)):
            what, fix = reason
            yield warning(service.source, "Service", shown,
                          f"no pool can give it an IPv{family} address ({what}), so it would stay pending; {fix}")


def _needed_families(service: Service) -> tuple[int, ...]:
    if service.ip_family_policy is IPFamilyPolicy.SINGLE_STACK:
        return service.ip_families[:1]
    return service.ip_families


def _family_reason(
    config: Config, service: Service, candidates: list[IPAddressPool], family: int
) -> tuple[str, str] | None:
    """(why no candidate pool serves `family`, how to fix it), or None when one does."""
    of_family = [p for p in candidates if family in p.families()]
    if not of_family:
        return f"no pool has IPv{family} addresses", f"add an IPv{family} range to a pool"
    admitting = [p for p in of_family if pool_admits(config, p, service)]
    if not admitting:
        names = ", ".join(p.name for p in of_family)
        return (f"serviceAllocation of {names} excludes namespace {service.namespace!r} or the Service's labels",
                "widen serviceAllocation or label the Service/namespace")
    if service.requested_pool is None and not any(p.auto_assign for p in admitting):
        names = ", ".join(p.name for p in admitting)
        return (f"{names}: autoAssign is false",
                f"request a pool with annotation {ANNOTATION_PREFIX}{ADDRESS_POOL} or set autoAssign: true")
    return None


def _requested_ip_problems(config: Config, service: Service, shown: str) -> Iterable[Diagnostic]:
    source = field_source(service.source, service.field_lines, "spec.loadBalancerIP")
    if source is service.source:
        source = _annotation_source(service, LOAD_BALANCER_IPS)
    for ip in service.requested_ips:
        reason = _requested_ip_reason(config, service, ip)
        if reason is not None:
            what, fix = reason
            yield warning(source, "Service", shown,
                          f"requested IP {ip} {what}, so the Service would stay pending; {fix}")


def _requested_ip_reason(config: Config, service: Service, ip: IPAddress) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for one requested IP, or None when a pool can serve it."""
    owners = [p for p in config.pools if p.contains(ip)]
    if not owners:
        in_range = [p for p in config.pools if any(ip in r for r in p.addresses)]
        if in_range:
            return (f"ends in .0 or .255 and pool {in_range[0].name!r} sets avoidBuggyIPs",
                    "request another IP or turn avoidBuggyIPs off")
        described = "; ".join(f"{p.name}: {', '.join(r.text for r in p.addresses)}" for p in config.pools)
        return (f"is in no pool ({described or 'there are no pools'})",
                "request an IP inside a pool or add a pool covering it")
    if service.requested_pool is not None and all(p.name != service.requested_pool for p in owners):
        return (f"is not in the requested pool {service.requested_pool!r} (it is in {owners[0].name!r})",
                "drop one of the two requests or make them agree")
    if not any(pool_admits(config, p, service) for p in owners):
        return (f"is in pool {owners[0].name!r}, whose serviceAllocation excludes this Service",
                "widen serviceAllocation or label the Service/namespace")
    return None
