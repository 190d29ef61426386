"""When to send gratuitous ARP / unsolicited NA: a pure timer, time passed in.

MetalLB (internal/layer2/announcer.go, `spam`) sends at once on takeover and
then every 1.1 s while less than 5 s have passed: five rounds, so a client that
missed one (a busy switch, a lost frame) still hears the move. MetalLB stops
there; switches whose FDB entry ages out (often 300 s) then flood or blackhole
the IP until a client ARPs again, so metalloid adds an opt-in periodic refresh
(`Settings.refresh_seconds`).

Keys are opaque (the announcer uses `(ip, interface)`). No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

BURST_INTERVAL = 1.1
BURST_DURATION = 5.0

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Entry:
    started: float
    next_at: float


class GratuitousTimer(Generic[K]):
    """Tracks, per key, when the next gratuitous round is due."""

    def __init__(
        self, *, interval: float = BURST_INTERVAL, duration: float = BURST_DURATION, refresh: float = 0.0
    ) -> None:
        self.interval = interval
        self.duration = duration
        self.refresh = refresh
        self._entries: dict[K, _Entry] = {}

    def start(self, key: K, now: float) -> None:
        """Begin (or restart) a burst for `key`: its first round is due at `now`."""
        self._entries[key] = _Entry(started=now, next_at=now)

    def cancel(self, key: K) -> None:
        self._entries.pop(key, None)

    def set_refresh(self, seconds: float) -> None:
        """Change the refresh period; a key past its burst keeps going only if > 0."""
        self.refresh = max(0.0, seconds)

    def active(self) -> frozenset[K]:
        return frozenset(self._entries)

    def due(self, now: float) -> list[K]:
        """The keys whose round is due at `now`, advancing each to its next round."""
        fired: list[K] = []
        for key, entry in list(self._entries.items()):
            if entry.next_at > now:
                continue
            fired.append(key)
            following = entry.next_at + self.interval
            if following - entry.started >= self.duration:
                if self.refresh <= 0:
                    del self._entries[key]
                    continue
                following = max(entry.next_at, entry.started + self.duration - self.interval) + self.refresh
            # A tick that came late does not make up missed rounds in a rush.
            entry.next_at = following if following > now else now + self.interval
        return fired
