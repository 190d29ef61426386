"""Resolving duplicate announcements while a split brain lasts: the lower MAC keeps the IP.

When heartbeats do not flow (a partition, a firewalled port), each side
elects itself and two nodes announce one IP; clients flip between them. The
two sides share no facts but the wire, so the rule uses only what both see
there: each claimant compares the MAC it announces with on the interface
where the other's claim (ARP reply, gratuitous ARP, NA) arrived with the
other's MAC. The lower MAC *keeps* the IP and re-asserts it (a gratuitous
burst, at most one per burst window while claims keep coming); the higher MAC
*yields*: it stops answering and sends no gratuitous frame for that IP on that
interface, but keeps listening and asks, once per burst interval, "who has
this IP?" with an RFC 5227 probe (sender IP 0.0.0.0 or ::, which claims
nothing and which no neighbour cache learns from). The keeper's answer is a
claim, so the yield lasts exactly as long as the keeper is there, even if the
keeper never saw our claim; YIELD_HOLD_SECONDS after the keeper was last
heard (it died or was unplugged: someone must answer) the yielder takes the
IP back with a takeover burst.

When members rejoin (the partition healed), the election is authoritative
again: every conflict is forgotten, and for REJOIN_GRACE_SECONDS this node
never yields (a claimant still heard then is a peer that has not seen the
rejoin yet and is about to withdraw; yielding to it would leave the IP
unanswered). Likewise for TAKEOVER_GRACE_SECONDS after this node takes an IP
over from a member that left: a peer stopping on SIGTERM keeps answering for
its handover overlap, hears our takeover and, its MAC lower, re-asserts;
yielding to it would leave the IP unanswered until the yield expired
(YIELD_HOLD_SECONDS), once it withdrew a moment later.

Pure: state in, state and actions out, times passed in. `announcer` applies
the actions to sockets and timers.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from plugins.layer2.gratuitous import BURST_DURATION, BURST_INTERVAL
from supervisor.api import IPAddress

# The yielder probes every BURST_INTERVAL and the keeper answers each probe;
# waiting three of them means two lost frames (a busy switch, a descheduled
# keeper) do not make it announce again, and a keeper that died is replaced
# within ~3.3 s.
YIELD_HOLD_SECONDS = 3 * BURST_INTERVAL
# At most one fresh burst per IP and interface per burst window while the
# conflict lasts, so a flood of claims (or forged ones) costs a few frames,
# not one per claim.
REASSERT_EVERY_SECONDS = BURST_DURATION
# After a rejoin, as long as the re-assert burst lasts: a peer that has not yet
# seen the rejoin withdraws within a heartbeat or two.
REJOIN_GRACE_SECONDS = BURST_DURATION
# After taking an IP over from a member that left, one burst interval: the
# leaving peer withdraws after its handover overlap (0.15 s, see
# supervisor/supervising/stopping.py); a true split brain (a partition looks
# the same from here) is resolved at most this much later.
TAKEOVER_GRACE_SECONDS = BURST_INTERVAL

Key = tuple[IPAddress, str]  # (ip, interface)


class Verdict(enum.Enum):
    KEEP = "keep"
    YIELD = "yield"


def verdict(our_mac: bytes, their_mac: bytes) -> Verdict:
    """The lower MAC keeps the IP: a total order both claimants compute alike.

    Equal MACs are ours (the responder never reports our own frames) and keep.
    """
    return Verdict.YIELD if their_mac < our_mac else Verdict.KEEP


@dataclass(frozen=True, slots=True, kw_only=True)
class Yielded:
    """This node stopped announcing `ip` on `interface` because `to_mac` (lower) claims it."""

    ip: IPAddress
    interface: str
    to_mac: bytes
    since: float  # wall clock, for /status
    last_seen: float  # monotonic: the keeper was last heard


@dataclass(frozen=True, slots=True, kw_only=True)
class Defended:
    """This node keeps `ip` on `interface` against `over_mac` (higher) and re-asserts it."""

    ip: IPAddress
    interface: str
    over_mac: bytes
    since: float  # wall clock, for /status
    last_burst: float  # monotonic: the last fresh burst


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflicts:
    yielded: Mapping[Key, Yielded] = field(default_factory=dict)
    defended: Mapping[Key, Defended] = field(default_factory=dict)
    grace_until: float = float("-inf")  # monotonic: no yielding before this


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The new state and what to do: stop announcing, burst now, announce again."""

    conflicts: Conflicts
    yielded: tuple[Yielded, ...] = ()
    reasserted: tuple[Defended, ...] = ()
    resumed: tuple[Yielded, ...] = ()


def observe(
    conflicts: Conflicts,
    *,
    ip: IPAddress,
    interface: str,
    our_mac: bytes,
    their_mac: bytes,
    now: float,
    wall: float,
) -> Outcome:
    """One claim of `ip` by `their_mac` on `interface`, where this node announces (or yielded) it."""
    key = (ip, interface)
    held = conflicts.yielded.get(key)
    if held is not None:
        # Only a lower MAC holds our yield; a higher one must yield to it too.
        if their_mac < our_mac:
            fresh = replace(held, to_mac=min(held.to_mac, their_mac), last_seen=now)
            return Outcome(conflicts=replace(conflicts, yielded={**conflicts.yielded, key: fresh}))
        return Outcome(conflicts=conflicts)
    if verdict(our_mac, their_mac) is Verdict.YIELD and now >= conflicts.grace_until:
        y = Yielded(ip=ip, interface=interface, to_mac=their_mac, since=wall, last_seen=now)
        defended = {k: d for k, d in conflicts.defended.items() if k != key}
        return Outcome(conflicts=replace(conflicts, yielded={**conflicts.yielded, key: y}, defended=defended),
                       yielded=(y,))  # fmt: skip
    was = conflicts.defended.get(key)
    if was is not None and now - was.last_burst < REASSERT_EVERY_SECONDS:
        return Outcome(conflicts=conflicts)
    d = Defended(ip=ip, interface=interface, over_mac=their_mac, since=was.since if was else wall, last_burst=now)
    return Outcome(conflicts=replace(conflicts, defended={**conflicts.defended, key: d}), reasserted=(d,))


def expire(conflicts: Conflicts, now: float) -> Outcome:
    """Yields whose keeper has not been heard for YIELD_HOLD_SECONDS end: announce again.

    A defence is forgotten once a burst window passed without a new claim.
    """
    gone = tuple(y for y in conflicts.yielded.values() if now - y.last_seen > YIELD_HOLD_SECONDS)
    done = [k for k, d in conflicts.defended.items() if now - d.last_burst >= REASSERT_EVERY_SECONDS]
    if not gone and not done:
        return Outcome(conflicts=conflicts)
    keys = {(y.ip, y.interface) for y in gone}
    kept = {k: y for k, y in conflicts.yielded.items() if k not in keys}
    defended = {k: d for k, d in conflicts.defended.items() if k not in done}
    return Outcome(conflicts=replace(conflicts, yielded=kept, defended=defended), resumed=gone)


def rejoined(now: float) -> Conflicts:
    """Members came back: the election decides again; no yielding during the grace."""
    return Conflicts(grace_until=now + REJOIN_GRACE_SECONDS)


def took_over(conflicts: Conflicts, now: float) -> Conflicts:
    """This node took an IP over from a member that left: the election decides, no yielding for a while."""
    return replace(conflicts, grace_until=max(conflicts.grace_until, now + TAKEOVER_GRACE_SECONDS))


def retain(conflicts: Conflicts, held: Iterable[Key]) -> Conflicts:
    """Forget conflicts of (ip, interface) pairs the election no longer gives this node."""
    keep = set(held)
    yielded = {k: y for k, y in conflicts.yielded.items() if k in keep}
    defended = {k: d for k, d in conflicts.defended.items() if k in keep}
    if len(yielded) == len(conflicts.yielded) and len(defended) == len(conflicts.defended):
        return conflicts
    return replace(conflicts, yielded=yielded, defended=defended)
