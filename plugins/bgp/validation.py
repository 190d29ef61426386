"""BGP-specific checks, contributed to `metalloid check` and to every reload.

MetalLB's webhook rules for the BGP kinds, as values: an aggregation length
shorter than a covered pool's own prefix, ASNs out of range, a hold time BGP
forbids, an advertisement naming a peer that does not exist, and two
advertisements without serviceSelectors giving a common pool's prefix to a
common peer from a common node with different localPref; and the
`bgp` AnnouncerConfig's own settings, so a typo is refused at `check` (and a
reload keeps the last good config) instead of failing the announcer's start.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from plugins.bgp.planning import local_prefs_collide
from supervisor.api import AnnouncerConfig, BGPAdvertisement, Config, Diagnostic, error, setting_error, warning

MAX_ASN = 2**32 - 1
PATHS = ("run_dir", "secrets_dir", "frr_bin_dir", "vtysh", "frr_reload")
FLAGS = ("manage_daemons", "incremental_apply")
# (key, least, most): seconds. The drain is inside the stop's grace period (5 s), with the withdrawal itself.
SECONDS = (("poll_seconds", 0.05, 60.0), ("drain_seconds", 0.0, 2.0))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_settings(announcer: AnnouncerConfig) -> list[Diagnostic]:
    """The `bgp` AnnouncerConfig's `spec.settings` (docs/configuring.md)."""
    settings = announcer.settings
    found: list[Diagnostic] = []
    for key in PATHS:
        if key in settings and (not isinstance(settings[key], str) or not settings[key]):
            found.append(setting_error(announcer, key, f"{settings[key]!r} is not a path; write it as a string"))
    for key in FLAGS:
        if key in settings and not isinstance(settings[key], bool):
            found.append(setting_error(announcer, key, f"{settings[key]!r} is not true or false"))
    for key, least, most in SECONDS:
        value = settings.get(key, least)
        if not _number(value) or not least <= value <= most:
            found.append(setting_error(announcer, key, f"{value!r} is not a number of seconds from {least:g} "
                                                       f"to {most:g}"))
    known = {*PATHS, *FLAGS, *(key for key, _, _ in SECONDS)}
    for key in sorted(settings.keys() - known):
        found.append(setting_error(announcer, key, f"is not a setting of the bgp announcer; it has "
                                                   f"{', '.join(sorted(known))}"))
    return found


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


def _nodes_of(config: Config, adv: BGPAdvertisement) -> set[str]:
    return {n.name for n in config.nodes
            if not adv.node_selectors or any(s.matches(n.label_map()) for s in adv.node_selectors)}


def local_pref_conflicts(config: Config) -> list[Diagnostic]:
    """MetalLB's `validateBGPAdvPerPool`: per pool, each advertisement without serviceSelectors against
    the earlier ones, the first collision refused. (With serviceSelectors it is a per-Service matter:
    planning.conflicting.)"""
    found: list[Diagnostic] = []
    refused: set[str] = set()
    nodes = {adv: _nodes_of(config, adv) for adv in config.bgp_advertisements if not adv.service_selectors}
    for pool in config.pools:
        advs = [a for a in config.bgp_advertisements_for(pool.name) if a in nodes]
        for i, adv in enumerate(advs):
            if adv.name in refused:
                continue
            earlier = next((b for b in advs[:i] if local_prefs_collide(adv, b, pool) and nodes[adv] & nodes[b]), None)
            if earlier is None:
                continue
            refused.add(adv.name)
            found.append(error(adv.source, "BGPAdvertisement", adv.name,
                               f"spec.localPref: {adv.local_pref or 0} differs from the {earlier.local_pref or 0} "
                               f"of BGPAdvertisement {earlier.name} for the same prefixes of pool {pool.name}, a "
                               "common peer and a common node, so the router would get one route with two "
                               "preferences (MetalLB refuses it too); give them the same localPref, or different "
                               "peers, nodeSelectors or aggregation lengths"))
    return found


def validate(config: Config) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    announcer = config.announcer("bgp")
    if announcer is not None:
        found.extend(validate_settings(announcer))
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
    found.extend(local_pref_conflicts(config))
    return found
