"""MetalLB's FRR-mode BGP and BFD metrics, from FRR's own JSON.

MetalLB's FRR mode exports these from its `frr-metrics` sidecar, which asks
vtysh at every scrape; metalloid's `bgp` announcer drives the same FRR, so it
exports the same families, with the same names, help texts, types and labels
(`peer`, `vrf`), from the speaker itself: its worker already polls FRR, and the
host's one registry behind /metrics exports each series once. The sidecar's
facts carried over:

- BGP, per neighbor: `session_up` and `announced_prefixes_total` (gauges), the
  `messageStats` counters (`updates_total` is FRR's `updatesSent`); `peer` is
  `IP:port`, `vrf` FRR's VRF name (`default` for the default VRF).
- BFD, per bfdd peer: `session_up` (status "up"), and the counters of
  `show bfd peers counters json`; `peer` is the IP alone.

Two differences, both deliberate: the BGP port is the BGPPeer's configured
port (MetalLB's sidecar takes FRR's `portForeign`, which is the peer's
ephemeral port when the peer opened the connection, or 0 while down), so a
series keeps its name across reconnects; and a BGPPeer FRR does not know (yet)
is exported as `session_up 0` rather than not at all. `pending_prefixes_total`
is MetalLB's native-mode family (the sidecar has none) and keeps its label
`peer`.

Parsing and sample building are pure; `Exporter` is the thin part that turns
samples into the host's metric calls (FRR's counters are absolute, the host's
counters take increments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from supervisor.api import AnnouncerHost

Labels = tuple[tuple[str, str], ...]
DEFAULT_VRF = "default"  # FRR's name for it, and the label MetalLB's sidecar gives it

BGP_NEIGHBORS = "show bgp vrf all neighbors json"
BFD_PEERS = "show bfd peers json"
BFD_COUNTERS = "show bfd peers counters json"


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    help: str
    kind: Literal["gauge", "counter"]


BGP_SESSION_UP = Family("metallb_bgp_session_up", "BGP session state (1 is up, 0 is down)", "gauge")
BGP_ANNOUNCED_PREFIXES = Family("metallb_bgp_announced_prefixes_total",
                                "Number of prefixes currently being advertised on the BGP session", "gauge")
BGP_PENDING_PREFIXES = Family("metallb_bgp_pending_prefixes_total",
                              "Number of prefixes that should be advertised on the BGP session", "gauge")
BGP_UPDATES = Family("metallb_bgp_updates_total", "Number of BGP UPDATE messages sent", "counter")

# (family, the key of FRR's `messageStats`), in the sidecar's order.
BGP_MESSAGE_COUNTERS: tuple[tuple[Family, str], ...] = (
    (Family("metallb_bgp_opens_sent", "Number of BGP open messages sent", "counter"), "opensSent"),
    (Family("metallb_bgp_opens_received", "Number of BGP open messages received", "counter"), "opensRecv"),
    (Family("metallb_bgp_notifications_sent", "Number of BGP notification messages sent", "counter"),
     "notificationsSent"),
    (BGP_UPDATES, "updatesSent"),
    (Family("metallb_bgp_updates_total_received", "Number of BGP UPDATE messages received", "counter"),
     "updatesRecv"),
    (Family("metallb_bgp_keepalives_sent", "Number of BGP keepalive messages sent", "counter"), "keepalivesSent"),
    (Family("metallb_bgp_keepalives_received", "Number of BGP keepalive messages received", "counter"),
     "keepalivesRecv"),
    (Family("metallb_bgp_route_refresh_sent", "Number of BGP route refresh messages sent", "counter"),
     "routeRefreshSent"),
    (Family("metallb_bgp_total_sent", "Number of total BGP messages sent", "counter"), "totalSent"),
    (Family("metallb_bgp_total_received", "Number of total BGP messages received", "counter"), "totalRecv"),
)

BFD_SESSION_UP = Family("metallb_bfd_session_up", "BFD session state (1 is up, 0 is down)", "gauge")

# (family, the key of `show bfd peers counters json`).
BFD_PEER_COUNTERS: tuple[tuple[Family, str], ...] = (
    (Family("metallb_bfd_control_packet_input", "Number of received BFD control packets", "counter"),
     "control-packet-input"),
    (Family("metallb_bfd_control_packet_output", "Number of sent BFD control packets", "counter"),
     "control-packet-output"),
    (Family("metallb_bfd_echo_packet_input", "Number of received BFD echo packets", "counter"), "echo-packet-input"),
    (Family("metallb_bfd_echo_packet_output", "Number of sent BFD echo packets", "counter"), "echo-packet-output"),
    (Family("metallb_bfd_session_up_events", "Number of BFD session up events", "counter"), "session-up"),
    (Family("metallb_bfd_session_down_events", "Number of BFD session down events", "counter"), "session-down"),
    (Family("metallb_bfd_zebra_notifications", "Number of BFD zebra notifications", "counter"),
     "zebra-notifications"),
)

FAMILIES: tuple[Family, ...] = (
    BGP_SESSION_UP, BGP_ANNOUNCED_PREFIXES, BGP_PENDING_PREFIXES,
    *(f for f, _ in BGP_MESSAGE_COUNTERS), BFD_SESSION_UP, *(f for f, _ in BFD_PEER_COUNTERS),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPNeighborStats:
    """One neighbor of `show bgp vrf all neighbors json`."""

    address: str
    vrf: str  # FRR's VRF name: "default" for the default VRF
    established: bool
    prefixes_sent: int
    messages: tuple[tuple[str, int], ...]  # messageStats, key -> count


@dataclass(frozen=True, slots=True, kw_only=True)
class BFDPeerStats:
    """One peer of `show bfd peers json`, with its counters when bfdd reported them."""

    peer: str
    vrf: str
    up: bool
    counters: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRef:
    """What the samples need of one planned BGP session."""

    address: str
    port: int
    vrf: str  # "" is the default VRF (BGPPeer spec.vrf)
    pending: int  # routes the plan advertises on it


@dataclass(frozen=True, slots=True)
class Sample:
    family: Family
    labels: Labels
    value: int


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_bgp(answer: Mapping[str, Any]) -> tuple[BGPNeighborStats, ...]:
    """`show bgp vrf all neighbors json` ({vrf: {address: neighbor}}) as stats, sorted."""
    found = []
    for vrf_name, neighbors in sorted(answer.items()):
        if not isinstance(neighbors, Mapping):
            continue
        for address, info in sorted(neighbors.items()):
            # Each VRF also carries scalars ("vrfId", "vrfName"); a neighbor has a bgpState.
            if not isinstance(info, Mapping) or "bgpState" not in info:
                continue
            families = info.get("addressFamilyInfo")
            sent = sum(_int(f.get("sentPrefixCounter")) for f in (families or {}).values()
                       if isinstance(f, Mapping)) if isinstance(families, Mapping) else 0
            stats = info.get("messageStats")
            messages = tuple(sorted((str(k), _int(v)) for k, v in stats.items())) if isinstance(stats, Mapping) else ()
            found.append(BGPNeighborStats(address=str(address), vrf=str(vrf_name),
                                          established=info["bgpState"] == "Established",
                                          prefixes_sent=sent, messages=messages))
    return tuple(found)


def parse_bfd(peers: Any, counters: Any) -> tuple[BFDPeerStats, ...]:
    """`show bfd peers json` and `show bfd peers counters json` (both lists of peers, every VRF)
    as stats, sorted. Joined on (peer, VRF), the series' identity (MetalLB's labels)."""
    def key(entry: Mapping[str, Any]) -> tuple[str, str]:
        return str(entry["peer"]), str(entry.get("vrf", DEFAULT_VRF))

    by_key = {key(e): e for e in (counters if isinstance(counters, list) else [])
              if isinstance(e, Mapping) and "peer" in e}
    found = {}
    for entry in peers if isinstance(peers, list) else []:
        if not isinstance(entry, Mapping) or "peer" not in entry:
            continue
        counted = by_key.get(key(entry), {})
        peer, vrf = key(entry)
        found[(vrf, peer)] = BFDPeerStats(
            peer=peer, vrf=vrf, up=entry.get("status") == "up",
            counters=tuple(sorted((k, _int(counted[k])) for _, k in BFD_PEER_COUNTERS if k in counted)))
    return tuple(found[k] for k in sorted(found))


def samples(sessions: Sequence[SessionRef], bgp: Iterable[BGPNeighborStats],
            bfd: Iterable[BFDPeerStats]) -> tuple[Sample, ...]:
    """Every series the speaker exports for FRR's BGP sessions and BFD peers, now.

    Each planned session gets session_up, announced_prefixes_total and pending_prefixes_total
    (up 0 and nothing announced while FRR does not report it); the message counters only once
    FRR reports the neighbor. Every BFD peer bfdd reports gets its session_up and counters."""
    neighbors = {(n.address, n.vrf): n for n in bgp}
    out: list[Sample] = []
    for session in sessions:
        vrf = session.vrf or DEFAULT_VRF
        peer = f"{session.address}:{session.port}"
        labels: Labels = (("peer", peer), ("vrf", vrf))
        neighbor = neighbors.get((session.address, vrf))
        out.append(Sample(BGP_SESSION_UP, labels, 1 if neighbor is not None and neighbor.established else 0))
        out.append(Sample(BGP_ANNOUNCED_PREFIXES, labels, neighbor.prefixes_sent if neighbor else 0))
        out.append(Sample(BGP_PENDING_PREFIXES, (("peer", peer),), session.pending))
        if neighbor is not None:
            messages = dict(neighbor.messages)
            out.extend(Sample(family, labels, messages.get(key, 0)) for family, key in BGP_MESSAGE_COUNTERS)
    for bfd_peer in bfd:
        labels = (("peer", bfd_peer.peer), ("vrf", bfd_peer.vrf))
        out.append(Sample(BFD_SESSION_UP, labels, 1 if bfd_peer.up else 0))
        counted = dict(bfd_peer.counters)
        out.extend(Sample(family, labels, counted[key]) for family, key in BFD_PEER_COUNTERS if key in counted)
    # One sample per series: a session planned twice (two BGPPeers, one address) is exported once.
    unique = {(s.family.name, s.labels): s for s in out}
    return tuple(unique.values())


class Exporter:
    """Samples → the host's metric calls: gauges set, counters advanced by the increase since the
    last sample (FRR's count restarts with its daemon: the new count is the increase), and the
    series no sample names any more removed."""

    def __init__(self, host: AnnouncerHost) -> None:
        self.host = host
        self._last: dict[tuple[Family, Labels], int] = {}
        self._resumed = False

    def resume_after_kill(self) -> None:
        """The last process was killed without `clear()`: the host still holds its counters, which
        already include FRR's counts so far. The next export takes FRR's counts as the starting
        point instead of adding them again (what happened between the kill and now is not counted:
        an undercount, never a double count)."""
        self._resumed = True

    def export(self, current: Iterable[Sample]) -> None:
        seen: dict[tuple[Family, Labels], int] = {}
        for sample in current:
            key = (sample.family, sample.labels)
            seen[key] = sample.value
            if sample.family.kind == "gauge":
                self.host.gauge(sample.family.name, sample.family.help, dict(sample.labels), sample.value)
                continue
            last = self._last.get(key)
            if last is None and self._resumed:
                increase = 0
            else:
                increase = sample.value if last is None or sample.value < last else sample.value - last
            if increase or last is None:  # the first sample declares the series, even at 0
                self.host.counter(sample.family.name, sample.family.help, dict(sample.labels), increase)
        for family, labels in sorted(self._last.keys() - seen.keys(), key=lambda k: (k[0].name, k[1])):
            self.host.remove(family.name, dict(labels))
        self._last = seen
        self._resumed = False

    def clear(self) -> None:
        """Remove every series exported (the announcer stops)."""
        self.export(())
