"""The record of duplicate announcements seen: what /status lists and how often it is logged.

Every claim the responder hears from another MAC for an IP this node
announces (or yielded) is counted; `Sightings` keeps one entry per (ip, mac)
for /status, says when a claim should be logged (at most once per
LOG_SECONDS per pair; the counter counts all), and drops entries of IPs no
longer ours or not seen for KEEP_SECONDS, keeping at most MAX newest. What to
do about a claim is `conflicts`' business, not this module's.

Pure: wall-clock times passed in.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

# Log one duplicate (ip, mac) at most this often; the counter counts all.
LOG_SECONDS = 10.0
# /status lists a (ip, mac) conflict until it was last seen this long ago: long
# enough for an operator to catch a conflict that comes and goes, short enough
# that a fixed one leaves. At most MAX (newest first) are kept, so a flood of
# forged MACs cannot grow memory or /status without bound.
KEEP_SECONDS = 300.0
MAX = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Sighting:
    ip: str
    mac: str
    interface: str
    count: int
    last_seen: float  # wall clock
    last_logged: float  # wall clock


class Sightings:
    """(ip, mac) -> the latest sighting, in the order first seen."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Sighting] = {}

    def seen(self, *, ip: str, mac: str, interface: str, wall: float) -> bool:
        """Record one claim; True when it should be logged now."""
        before = self._by_key.get((ip, mac))
        log = before is None or wall - before.last_logged >= LOG_SECONDS
        if before is None:
            self._by_key[(ip, mac)] = Sighting(ip=ip, mac=mac, interface=interface, count=1, last_seen=wall,
                                               last_logged=wall)  # fmt: skip
        else:
            self._by_key[(ip, mac)] = replace(before, interface=interface, count=before.count + 1, last_seen=wall,
                                              last_logged=wall if log else before.last_logged)  # fmt: skip
        return log

    def __len__(self) -> int:
        return len(self._by_key)

    def prune(self, ours: Collection[str], wall: float) -> None:
        """Keep sightings of IPs announced or yielded (`ours`), seen within KEEP_SECONDS, the newest MAX."""
        fresh = [key for key, s in self._by_key.items() if key[0] in ours and wall - s.last_seen <= KEEP_SECONDS]
        if len(fresh) > MAX:
            fresh = sorted(fresh, key=lambda key: self._by_key[key].last_seen)[-MAX:]
        if len(fresh) != len(self._by_key):
            keep = set(fresh)
            self._by_key = {key: s for key, s in self._by_key.items() if key in keep}

    def report(self) -> list[dict[str, Any]]:
        """/status's `duplicates`: ip, mac, interface, count, last_seen."""
        return [{"ip": s.ip, "mac": s.mac, "interface": s.interface, "count": s.count, "last_seen": s.last_seen}
                for s in self._by_key.values()]  # fmt: skip
