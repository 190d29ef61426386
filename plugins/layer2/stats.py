"""Layer 2's metrics: their names (MetalLB's where MetalLB has one) and the per-IP counter deltas.

The responder thread counts requests and responses per packed IP in plain
dicts (a lock per packet would cost more than the reply); on every tick the
announcer reads copies and reports what grew since the last flush, as
Prometheus counter increments. `Counts` remembers what was flushed and
forgets the IPs no longer owned, so the dicts do not grow with every IP this
node ever held.

No I/O: `announcer` hands the deltas to the host.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, MutableMapping

REQUESTS = "metallb_layer2_requests_received"
RESPONSES = "metallb_layer2_responses_sent"
GRATUITOUS = "metallb_layer2_gratuitous_sent"
ANNOUNCED = "metallb_speaker_announced"
DUPLICATES = "metalloid_layer2_duplicate_announcements_total"
SOCKET_DROPS = "metalloid_layer2_socket_drops_total"
FAILOVER = "metalloid_failover_seconds"
DOCS = {
    REQUESTS: "Number of layer2 requests received for owned IPs",
    RESPONSES: "Number of layer2 responses sent for owned IPs",
    GRATUITOUS: "Number of gratuitous layer2 packets sent for owned IPs",
    ANNOUNCED: "The node is announcing the service IP (1) over the protocol",
    DUPLICATES: "ARP replies, gratuitous ARPs or NAs from another MAC for an IP this node announces",
    SOCKET_DROPS: "ARP/NDP frames the kernel dropped because the responder's socket queue was full",
    FAILOVER: "Time from membership declaring an IP's previous owner dead (or leaving) to this node's first "
    "gratuitous ARP/NA for it",
}


class Counts:
    """What was already reported of the responder's per-IP counters (REQUESTS, RESPONSES)."""

    def __init__(self) -> None:
        self.flushed: dict[str, dict[bytes, int]] = {REQUESTS: {}, RESPONSES: {}}
        # Packed IPs found not owned at the last `forget`: dropped at the next.
        self._unowned: set[bytes] = set()

    def deltas(self, name: str, current: Mapping[bytes, int], *more: Mapping[bytes, int]) -> list[tuple[bytes, int]]:
        """What `current` (plus `more`: the kernel's counts) grew by since the last call, per packed IP.

        Remembers it as flushed.
        """
        flushed = self.flushed[name]
        out: list[tuple[bytes, int]] = []
        # A copy: the responder thread keeps writing the original.
        totals = dict(current)
        for counted in more:
            for packed, n in counted.items():
                totals[packed] = totals.get(packed, 0) + n
        for packed, total in totals.items():
            delta = total - flushed.get(packed, 0)
            if delta > 0:
                out.append((packed, delta))
                flushed[packed] = total
        return out

    def forget(self, owned: Collection[bytes], live: Collection[MutableMapping[bytes, int]]) -> None:
        """Drop the per-IP counts of IPs no longer owned, once their last delta is flushed.

        `live` are the responder's own dicts. Only the dicts shrink; the metric
        series keep their last values, as Prometheus counters must. An IP is
        forgotten one flush after it was first found not owned: the responder
        thread reads the owned map per frame, so by then it cannot be adding to
        the count we delete (a count it re-created would be flushed again
        whole). Owned again later, it counts from zero and the deltas stay right.
        """
        counts = (*live, *self.flushed.values())
        unowned = {packed for d in counts for packed in list(d) if packed not in owned}
        for packed in unowned & self._unowned:
            for d in counts:
                d.pop(packed, None)
        self._unowned = unowned - self._unowned
