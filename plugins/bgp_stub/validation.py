"""BGP-specific checks, contributed to `metalloid check` and to every reload.

MetalLB's webhook rules for the BGP kinds, as values: an aggregation length
shorter than a covered pool's own prefix, ASNs out of range, a hold time BGP
forbids, and an advertisement naming a peer that does not exist.
"""

from __future__ import annotations

import ipaddress

from supervisor.api import BGPAdvertisement, Config, Diagnostic, error, warning

MAX_ASN = 2**32 - 1


def _least_specific_prefix(config: Config, adv: BGPAdvertisement, version: int) -> tuple[int, str] | None:
    """The shortest prefix length among the CIDRs of the pools `adv` covers."""
    best: tuple[int, str] | None = None
    for pool in config.pools:
        if adv not in config.bgp_advertisements_for(pool.name):
            continue
        for rng in pool.addresses:
            if rng.version != version:
                continue
            for net in ipaddress.summarize_address_range(rng.first, rng.last):
                if best is None or net.prefixlen < best[0]:
                    best = (net.prefixlen, f"{pool.name} ({rng.text})")
    return best


def validate(config: Config) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    peer_names = {p.name for p in config.bgp_peers}
    for peer in config.bgp_peers:
        asns = [("spec.myASN", peer.my_asn)] + ([] if peer.dynamic_asn else [("spec.peerASN", peer.peer_asn)])
        for field, asn in asns:
            if not 0 < asn <= MAX_ASN:
                found.append(error(peer.source, "BGPPeer", peer.name,
                                   f"{field}: {asn} is not a valid AS number; use 1-{MAX_ASN}"))
        if peer.hold_time_seconds != 0 and peer.hold_time_seconds < 3:
            found.append(error(peer.source, "BGPPeer", peer.name,
                               f"spec.holdTime: {peer.hold_time_seconds:g}s is not allowed by BGP; "
                               "use 0 or at least 3s"))
        keepalive = peer.keepalive_time_seconds
        if keepalive is not None and peer.hold_time_seconds and keepalive > peer.hold_time_seconds:
            found.append(error(peer.source, "BGPPeer", peer.name,
                               f"spec.keepaliveTime: {keepalive:g}s is longer than holdTime "
                               f"{peer.hold_time_seconds:g}s; make it at most a third of holdTime"))
    for adv in config.bgp_advertisements:
        for name in adv.peers:
            if name not in peer_names:
                found.append(warning(adv.source, "BGPAdvertisement", adv.name,
                                     f"spec.peers: BGPPeer {name!r} does not exist, so nothing is advertised to it; "
                                     "create it or remove the name"))
        for version, length in ((4, adv.aggregation_length), (6, adv.aggregation_length_v6)):
            least = _least_specific_prefix(config, adv, version)
            if least is not None and length < least[0]:
                field = "spec.aggregationLength" if version == 4 else "spec.aggregationLengthV6"
                found.append(error(adv.source, "BGPAdvertisement", adv.name,
                                   f"{field}: {length} is shorter than the /{least[0]} prefix of pool {least[1]}; "
                                   f"use at least {least[0]}"))
    return found
