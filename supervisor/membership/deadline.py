"""How long a peer may stay silent before it is dead: fixed, or adaptive to its measured jitter.

Pure: the detector feeds it arrival times and sequence numbers and asks for
the allowed silence; no clock of its own, no sockets
(tests/test_membership_deadline.py).

The adaptive rule (the default, `deadAfterSeconds` not set) is VRRP's shape,
`misses` intervals of silence, plus a margin learnt from the peer itself
instead of VRRP's fixed skew:

    allowed = misses x interval + clamp(floor + 2 x peak, floor, cap)
    (cap = 4 intervals: at most 7 intervals, 0.35 s at the default 0.05 s)

`peak` is the largest *lateness* seen recently between two heartbeats of the
peer: the gap between arrivals minus the time the sender's schedule put
between them (the sequence number says how many intervals that was, so a
lost datagram is not mistaken for jitter). It decays with a half-life, so a
burst of load an hour ago does not slow detection now, while a peer that is
late again and again keeps a long deadline (the soak in BENCHMARKS.md).

Why this is safe with a margin of only 5-15 ms on an idle network: a false
death needs the next heartbeat to be later than `allowed` after the last
one. Without loss that is a lateness *increase* of (misses - 1) intervals
plus the margin (200+ ms at the 0.1 s default); only two lost datagrams in a
row leave just the margin, which is VRRP's exposure as well (its skew is
26 ms at advert_int 0.1 s and priority 190).

Under a flood that reaches the receive loop (a turn cut short by its budget:
datagrams that pass the socket filter, e.g. forged with a peer's address and
our incarnation) real heartbeats wait behind the junk or are dropped with it,
and lateness says nothing yet: the detector then gives every peer the
longest deadline (`longest`, 7 intervals) until PRESSURE_HOLD_SECONDS after
the last such turn.

What it does not do: VRRP's rank skew (lower priority waits longer). That
skew breaks the tie between backups that would otherwise all become master;
metalloid's election is deterministic (every node computes the same winner
per IP), so when a node declares a peer dead it only acts for the IPs where
it is next in line, and a node that is not next in line for any of them does
nothing with an early verdict. Making the others wait longer would only
delay the case where the next in line died too (docs/failover.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Silent intervals before the margin: VRRP's 3 (RFC 9568 Master_Down_Interval).
MISSES = 3
# The smallest margin: timer and scheduling granularity of an idle host (its
# heartbeats' lateness, which the learnt part adds twice, is ~0.5 ms on an
# idle VM). VRRP's first backup (priority 254) waits 2/256 of an interval,
# 0.8 ms at 0.1 s; 10 ms until issue 16's sixth round.
FLOOR_SECONDS = 0.005
# A lateness spike counts half as much after this long.
HALF_LIFE_SECONDS = 30.0
# The margin never exceeds this many intervals: the longest deadline is 7
# intervals, 0.35 s at the default 0.05 s (the fixed default before issue 16).
CAP_INTERVALS = 4.0
# A turn of the receive loop cut short by its budget (a flood that passes the
# socket filter) puts every peer on the longest deadline for this long: real
# heartbeats may be queued behind the junk or dropped with it.
PRESSURE_HOLD_SECONDS = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlinePolicy:
    interval_seconds: float
    # Set (`deadAfterSeconds` in the config): a fixed deadline, no adaptation.
    fixed_seconds: float | None = None
    misses: int = MISSES
    floor_seconds: float = FLOOR_SECONDS
    half_life_seconds: float = HALF_LIFE_SECONDS
    cap_intervals: float = CAP_INTERVALS

    @property
    def adaptive(self) -> bool:
        return self.fixed_seconds is None

    @property
    def cap_seconds(self) -> float:
        return self.cap_intervals * self.interval_seconds

    @property
    def longest(self) -> float:
        """The longest silence this policy ever allows (the worst-case detection)."""
        if self.fixed_seconds is not None:
            return self.fixed_seconds
        return self.misses * self.interval_seconds + max(self.floor_seconds, self.cap_seconds)

    @property
    def shortest(self) -> float:
        """The silence allowed with no lateness seen (an idle network)."""
        if self.fixed_seconds is not None:
            return self.fixed_seconds
        return self.misses * self.interval_seconds + self.floor_seconds

    def allowed(self, peak: float) -> float:
        """Silence allowed after a heartbeat, given the peer's recent lateness `peak`."""
        if self.fixed_seconds is not None:
            return self.fixed_seconds
        floor = self.floor_seconds  # (once per heartbeat received: no property calls)
        margin = min(max(floor + 2 * peak, floor), max(floor, self.cap_intervals * self.interval_seconds))
        return self.misses * self.interval_seconds + margin


@dataclass(slots=True, kw_only=True)
class Jitter:
    """A peer's recent lateness: a decaying peak of (arrival gap - scheduled gap)."""

    peak: float = 0.0
    peak_at: float = 0.0
    last_at: float | None = None
    last_key: tuple[int, int] | None = None  # (incarnation, seq) of the last heartbeat

    def current(self, policy: DeadlinePolicy, now: float) -> float:
        """The peak as it has decayed by `now`."""
        if self.peak <= 0.0:
            return 0.0
        return self.peak * math.pow(0.5, max(0.0, now - self.peak_at) / policy.half_life_seconds)

    def heard(self, policy: DeadlinePolicy, *, incarnation: int, seq: int, now: float) -> float:
        """Record an accepted heartbeat; returns the peak to judge the next deadline by."""
        previous, last_at = self.last_key, self.last_at
        self.last_key, self.last_at = (incarnation, seq), now
        peak = self.peak  # decayed as `current` does, inline: once per heartbeat received
        if peak > 0.0:
            peak *= math.pow(0.5, max(0.0, now - self.peak_at) / policy.half_life_seconds)
        if previous is not None and last_at is not None and previous[0] == incarnation and seq > previous[1]:
            # seq grows by one per send round; a jump is lost datagrams, not lateness.
            lateness = (now - last_at) - (seq - previous[1]) * policy.interval_seconds
            if lateness > peak:
                peak = lateness
        self.peak, self.peak_at = peak, now
        return peak

    def forget(self) -> None:
        """The peer died or left: the next life starts its gaps afresh (the peak stays)."""
        self.last_key = self.last_at = None
