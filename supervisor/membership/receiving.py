"""One bounded receive turn on the heartbeat socket, and the drop counters it feeds.

Anyone on the LAN can send UDP to the heartbeat port without the key. The
loop must keep sending heartbeats and judging deadlines whatever arrives, so a
turn reads at most `TurnBudget.max_datagrams` datagrams and stops after
`TurnBudget.max_seconds` (whichever comes first); what is left waits for the
next turn, after the loop has ticked. Each datagram first goes through
`Screen` (the source is a configured peer's address, the size and
magic/version are plausible, it echoes our incarnation, and with a key it
carries the token the claimed peer's next heartbeats carry: `Lanes`), which
costs a set lookup, a few slices and a dict lookup, before `handle`
authenticates and parses it.
The kernel socket filter (sockfilter.py) runs the same checks before a
datagram is queued; the Screen stays for what the filter lets through (peers
not proven alive, kernels without a filter) and for its counts.

Drops are only counted here (a dict increment per datagram); the worker
reports the counts once a second (`Reporter.drops`), never one message per
datagram.

Pure apart from the two callables: the socket's recv and the clock are passed
in, so tests drive a turn with a fake socket and a fake clock
(tests/test_membership_receiving.py).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor.membership.codec import (
    MAX_PACKET,
    MIN_PACKET,
    TOKEN_SIZE,
    DropReason,
    Heartbeat,
    echo_field,
    lane_fields,
    lane_token,
    screen,
)

log = logging.getLogger(__name__)

# Up to `limit` queued datagrams as (data, source, arrived: when it arrived, on the monotonic clock);
# empty when none is queued.
Recv = Callable[[int], Sequence[tuple[bytes, Any, float]]]
# Datagrams per recvmmsg(2) call: one system call and one Python call for
# up to 64 instead of one each (BENCHMARKS.md, "Membership under a
# heartbeat-port flood").
BATCH = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnBudget:
    # 5 ms is under 2% of the default 0.35 s deadline, so a turn that used it
    # all still leaves the loop free to tick and send on time.
    max_datagrams: int = 512
    max_seconds: float = 0.005


# A loop turn costs more than reading one datagram (select, the tick, and on
# a busy host a wake-up with cold caches): with many peers their heartbeats
# arrive a fraction of a millisecond apart, and a turn per datagram was most
# of the worker's CPU (docs/failover.md, "Cluster size"). Past this many
# expected datagrams a second, the loop reads in batches; below it, every
# datagram is read the moment it arrives.
TURNS_PER_SECOND = 200
# In batches, the socket waits half a heartbeat interval between reads, at
# least 1 / TURNS_PER_SECOND and at most MAX_GAP_SECONDS: 50 ms at 250 peers
# (0.25 s), 25 ms at 50 (0.05 s). Each datagram carries the kernel's arrival
# time (transport.recv), so the gap is not lateness to the detector; what it
# costs is that a LEAVING (a graceful stop) and a peer coming back are read up
# to a gap late. Half an interval instead of a tenth (before the arrival times)
# took the worker from 7.6 to 4.5 % of a core at 50 peers and from 4.2 to 3.1 %
# at 250 (BENCHMARKS.md, "Issue 16, fourth session: membership").
BATCHES_PER_INTERVAL = 2
MAX_GAP_SECONDS = 0.05


def receive_gap(peers: int, interval_seconds: float) -> float:
    """How long the loop leaves the socket unread after a receive turn (0: read as datagrams arrive).

    Peers' heartbeats arrive `peers / interval_seconds` times a second. Up to
    TURNS_PER_SECOND of them, 0; above, half an interval, between
    1 / TURNS_PER_SECOND (5 ms) and MAX_GAP_SECONDS. A heartbeat counts from
    when it arrived, not from when it was read, and the loop reads before it
    judges a deadline, whatever the gap, so a heartbeat that arrived in time
    always counts and a death is detected when the deadline passes. A turn
    cut short by its budget (more is queued: a flood) reads again at once.
    """
    if interval_seconds <= 0 or peers / interval_seconds <= TURNS_PER_SECOND:
        return 0.0
    return min(MAX_GAP_SECONDS, max(1.0 / TURNS_PER_SECOND, interval_seconds / BATCHES_PER_INTERVAL))


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnResult:
    received: int
    # The budget ran out before the socket was empty: more is queued.
    cut_short: bool


class DropCounter:
    """Dropped datagrams by reason since the last `take`, with the last source and detail of each."""

    def __init__(self) -> None:
        self.counts: dict[DropReason, int] = {}
        self.last: dict[DropReason, tuple[Any, str]] = {}

    def add(self, reason: DropReason, source: Any, detail: str = "", count: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + count
        self.last[reason] = (source, detail)

    def add_all(self, reasons: list[DropReason], sources: list[Any]) -> None:
        """`add(reasons[i], sources[i])` for every i, counted in C (a receive turn's drops at once)."""
        left = len(reasons)
        if not left:
            return
        # list.count compares by identity in C; hashing an Enum member is a
        # Python call each (collections.Counter cost more than the screen did).
        # A flood is nearly always one reason: one pass.
        first = reasons[0]
        for reason in (first, *(r for r in DropReason if r is not first)):
            count = reasons.count(reason)
            if not count:
                continue
            self.counts[reason] = self.counts.get(reason, 0) + count
            # The last source of each reason wins, as with one `add` per datagram.
            self.last[reason] = (sources[len(reasons) - 1 - reasons[::-1].index(reason)], "")
            left -= count
            if not left:
                return

    def take(self) -> tuple[dict[DropReason, int], dict[DropReason, tuple[Any, str]]]:
        """The counts and samples so far; starts counting from zero again."""
        counts, last = self.counts, self.last
        self.counts, self.last = {}, {}
        return counts, last


def receive_turn(
    recv: Recv,
    handle: Callable[[bytes, Any, float], None],
    *,
    screen: Callable[[bytes, Any], DropReason | None],
    drops: DropCounter,
    budget: TurnBudget,
    clock: Callable[[], float],
    cpu: Callable[[], float] | None = None,
    batch: int = BATCH,
) -> TurnResult:
    """Read and handle datagrams until the socket is empty or the budget is spent.

    `recv(limit)` gives up to `limit` queued datagrams at once (the worker's
    is one recvmmsg(2) call, `transport.Transport.recv`), at most `batch` per
    call and never more than the count budget has left; the time budget is
    looked at between calls, so a turn may outrun it by one batch (64
    datagrams, well under a millisecond).

    `cpu` (the worker passes `time.thread_time`): the time budget counts the
    CPU this turn used, not time the thread spent preempted. On a loaded host
    a turn of a few datagrams often outlasts 5 ms of wall clock; cut short, it
    looked like a flood (`cut_short` puts every peer on the longest deadline,
    detector.pressure), which at 250 peers made detection 1.75 s instead of
    ~0.76 s (BENCHMARKS.md, "Issue 16: membership at scale"). The wall clock
    is read per call (cheap); the CPU clock only at the start and when the
    wall clock says the budget may be spent. None: `clock` is both.
    """
    start = clock()
    limit = start + budget.max_seconds
    cpu_start = cpu() if cpu is not None else start
    n = 0
    reasons: list[DropReason] = []
    sources: list[Any] = []
    while n < budget.max_datagrams:
        # At least one datagram per turn, however slow the clock says we are.
        if n and clock() >= limit:
            used = budget.max_seconds if cpu is None else cpu() - cpu_start
            if used >= budget.max_seconds:
                drops.add_all(reasons, sources)
                return TurnResult(received=n, cut_short=True)
            # The rest of the wall time was not ours: what is left of the CPU budget.
            limit = clock() + budget.max_seconds - used
        try:
            datagrams = recv(min(batch, budget.max_datagrams - n))
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:
            # e.g. ECONNREFUSED from an earlier send's ICMP: nothing to read now.
            log.debug("membership.recv_failed error=%s", exc)
            break
        if not datagrams:
            break
        n += len(datagrams)
        for data, source, arrived in datagrams:
            reason = screen(data, source)
            if reason is None:
                handle(data, source, arrived)
            else:
                # Counted once per turn (`add_all`): under a flood this is most datagrams.
                reasons.append(reason)
                sources.append(source)
    else:
        drops.add_all(reasons, sources)
        return TurnResult(received=n, cut_short=True)
    drops.add_all(reasons, sources)
    return TurnResult(received=n, cut_short=False)


class Screen:
    """What a datagram must pass before `decode` spends an HMAC on it.

    1. Its source address is a configured peer's (`sources`).
    2. `codec.screen`: plausible size, magic and version.
    3. It echoes our current incarnation (`codec.echo_field`, no parsing).
       Only such a packet can be proof of life (see detector), so it always
       goes on to decode. One that echoes anything else is at best a peer's
       first packet after one of us restarted, which the peer re-sends
       correctly one interval after it hears us (our heartbeats carry our
       incarnation); those go on to decode only up to `stale_per_second`
       (refilled by `refill`, once a second), the rest are `stale_echo`.

    4. With `lanes` (a key): an echoing datagram that claims a peer whose
       heartbeats carry tokens must carry the token of one of that peer's
       next sequence numbers (`Lanes.check`).

    So a flood that does not know our incarnation (nothing secret, but only
    sent to peers, unicast) costs a slice and a compare per datagram, not an
    HMAC, and so does one that knows it but claims a peer proven in this run
    (its tokens cannot be predicted). Only one that claims a peer not heard
    since we started costs an HMAC each (docs/failover.md, "Floods").
    """

    def __init__(self, sources: frozenset[str], incarnation: int, *, stale_per_second: int = 64,
                 lanes: Lanes | None = None) -> None:
        self.sources = sources
        self.stale_per_second = stale_per_second
        self.stale_left = stale_per_second
        self.echo = b""
        self.incarnation = incarnation
        self.lanes = lanes

    @property
    def incarnation(self) -> int:
        return int.from_bytes(self.echo, "big")

    @incarnation.setter
    def incarnation(self, value: int) -> None:
        self.echo = value.to_bytes(8, "big")

    def refill(self) -> None:
        self.stale_left = self.stale_per_second
        if self.lanes is not None:
            self.lanes.refill()

    def __call__(self, data: bytes, source: Any) -> DropReason | None:
        host = source[0]
        if host not in self.sources and host.partition("%")[0] not in self.sources:  # IPv6: fe80::1%eth0
            return DropReason.UNKNOWN_SOURCE
        lanes = self.lanes
        if lanes is not None and lanes.guarding and MIN_PACKET <= len(data) <= MAX_PACKET:
            # The fast lane (see Lanes.heads): a flood that echoes us claiming a
            # proven peer costs this, not the checks below one by one.
            end = HEAD_SIZE + data[5] + data[6]
            sender = lanes.heads.get(data[:end])
            if sender is not None and data[end + 24 : end + 32] == self.echo:
                return lanes.check_known(sender, data, end)
        reason = screen(data)
        if reason is not None:
            return reason
        if echo_field(data) == self.echo:
            return None if self.lanes is None else self.lanes.check(data)
        if self.stale_left > 0:
            self.stale_left -= 1
            return None
        return DropReason.STALE_ECHO


# A heartbeat's fixed prefix before the names (magic, version, type, flags, two name lengths).
HEAD_SIZE = 7
# The heads `Lanes` keeps per peer: the two packet types, the four flag combinations.
_HEAD_TYPES = (1, 2)
_HEAD_FLAGS = 3
_INCARNATION_SEQ = struct.Struct("!QQ")

# How far ahead of a peer's last authenticated sequence number a token is
# looked for: 64 intervals (3.2 s at the default interval), far past any
# deadline, so a live peer's heartbeats are always inside it.
LANE_WINDOW = 64
# How long the lanes are enforced after the last datagram that failed its MAC.
GUARD_SECONDS = 10.0


@dataclass(slots=True)
class _Lane:
    incarnation: int
    seq: int
    # What the token slot of the peer's last authenticated datagram held, and
    # whether it was lane_token's (None: not looked at yet; False: an older
    # metalloid, which writes its clock there, so it has no lane).
    token: bytes
    valid: bool | None
    # lane_token of the sequence numbers asked about so far, each computed once.
    tokens: dict[int, bytes]


class Lanes:
    """The fast lane: which datagrams echoing our incarnation get an HMAC without limit.

    A keyed peer's heartbeats carry `codec.lane_token(key, sender, receiver,
    incarnation, seq)`. Once a datagram from a peer has been authenticated
    (`heard`) and carried a valid token, the peer has a lane: its next
    datagrams are expected at its incarnation with a sequence number up to
    LANE_WINDOW past the last, and their tokens can be computed before they
    arrive (once per sequence number, cached). A datagram claiming that peer
    with the expected token goes on to the HMAC; any other (a forgery, which
    cannot know the next token even when it sees every heartbeat; a replay;
    the peer's first datagrams after it restarted or after it fell more than
    the window behind) gets `unproven_per_second` HMACs a second between
    all peers and is `bad_token` beyond that, a dict lookup and a compare.

    A datagram claiming a name that is no peer's is `unknown_node` here, as
    decode would say after the HMAC. A peer without a lane (not heard since we
    started; one whose heartbeats carry no valid token: an older metalloid) is
    checked as before the lanes: every datagram that echoes us gets an HMAC.

    The lanes are enforced only while `guarding`: from a datagram that failed
    its MAC (`guard`, which the worker calls) until GUARD_SECONDS after the
    last one (`calm`). Without forgeries nothing fails its MAC, and checking
    tokens would only add an HMAC to every genuine heartbeat; so `heard` only
    notes what the token slot held, and a token is computed only while
    guarding (the first forgery costs its HMAC and switches the guard on).
    """

    def __init__(self, key: bytes, receiver: str, peers: frozenset[str] = frozenset(), *,
                 unproven_per_second: int = 64) -> None:
        self.key = key
        self.receiver = receiver.encode()
        self.unproven_per_second = unproven_per_second
        self.unproven_left = unproven_per_second
        self.guarding = False
        self._guard_until = 0.0
        self._lanes: dict[bytes, _Lane] = {}
        # The bytes up to the counters (magic, version, type, flags, the two
        # names: ours as the receiver) of datagrams `check` saw claiming a
        # peer with a lane -> that peer. A datagram starting with one of them
        # is judged by `check_known` without parsing it (Screen.__call__).
        self.heads: dict[bytes, bytes] = {}
        self.peers = peers

    @property
    def peers(self) -> frozenset[str]:
        return self._peers

    @peers.setter
    def peers(self, peers: frozenset[str]) -> None:
        """The configured peers (a new config): lanes of removed peers go."""
        self._peers = peers
        self._names = frozenset(p.encode() for p in peers)
        self._lanes = {n: lane for n, lane in self._lanes.items() if n in self._names}
        self.heads = {head: n for head, n in self.heads.items() if n in self._names}

    def lane(self, peer: str) -> tuple[int, int] | None:
        """(incarnation, seq) the peer's lane expects next from, or None without a lane."""
        name = peer.encode()
        lane = self._lanes.get(name)
        return None if lane is None or not self._valid(name, lane) else (lane.incarnation, lane.seq)

    def guard(self, now: float) -> None:
        """A datagram failed its MAC: enforce the lanes until GUARD_SECONDS from now."""
        self.guarding, self._guard_until = True, now + GUARD_SECONDS

    def calm(self, now: float) -> None:
        if self.guarding and now >= self._guard_until:
            self.guarding = False

    def refill(self) -> None:
        self.unproven_left = self.unproven_per_second

    def check(self, data: bytes) -> DropReason | None:
        """For a datagram that passed the Screen's echo check: None when it deserves an HMAC."""
        if not self.guarding:
            return None
        sender, incarnation, seq, token = lane_fields(data)
        if sender not in self._names:
            return DropReason.UNKNOWN_NODE
        lane = self._lanes.get(sender)
        if lane is None or not self._valid(sender, lane):
            return None
        end = HEAD_SIZE + data[5] + data[6]
        if data[3] in _HEAD_TYPES and data[4] <= _HEAD_FLAGS and data[HEAD_SIZE + data[5] : end] == self.receiver:
            # The next datagram with these bytes up to the counters takes the fast lane (bounded: 8 per peer).
            self.heads[data[:end]] = sender
        return self._judge(sender, lane, incarnation, seq, token)

    def check_known(self, sender: bytes, data: bytes, end: int) -> DropReason | None:
        """`check`'s verdict for a datagram whose head (bytes up to the counters) is in `heads`, without parsing it.

        The head says who it claims to be and that it is a heartbeat for us;
        the rest is the lane's window and token. A lane not yet judged (a new
        life of the peer) goes through `check`.
        """
        lane = self._lanes.get(sender)
        if lane is None or lane.valid is not True:
            return self.check(data)
        incarnation, seq = _INCARNATION_SEQ.unpack_from(data, end)
        return self._judge(sender, lane, incarnation, seq, data[end + 16 : end + 16 + TOKEN_SIZE])

    def _judge(self, sender: bytes, lane: _Lane, incarnation: int, seq: int, token: bytes) -> DropReason | None:
        in_window = incarnation == lane.incarnation and lane.seq < seq <= lane.seq + LANE_WINDOW
        if in_window and token == self._token(sender, lane, seq):
            return None
        if self.unproven_left > 0:
            self.unproven_left -= 1
            return None
        return DropReason.BAD_TOKEN

    def heard(self, hb: Heartbeat) -> None:
        """`hb` passed its MAC check (whatever its echo, fresh or a replay): follow its sender's lane."""
        sender = hb.sender.encode()
        if sender not in self._names:
            return
        lane = self._lanes.get(sender)
        token = hb.sent_at_ns.to_bytes(TOKEN_SIZE, "big")  # the token slot
        if lane is None or lane.incarnation != hb.incarnation:
            if lane is not None and hb.incarnation < lane.incarnation:
                return  # a replay of an earlier life
            # A new life (or the first we hear): whether it writes tokens is looked at when needed.
            self._lanes[sender] = _Lane(incarnation=hb.incarnation, seq=hb.seq, token=token, valid=None, tokens={})
            return
        if hb.seq <= lane.seq:
            return  # a replay
        lane.seq, lane.token = hb.seq, token
        if len(lane.tokens) > LANE_WINDOW:
            lane.tokens = {s: t for s, t in lane.tokens.items() if s > hb.seq}

    def _valid(self, sender: bytes, lane: _Lane) -> bool:
        """Whether the lane's peer writes tokens (one HMAC per life of the peer, when first needed)."""
        if lane.valid is None:
            lane.valid = lane.token == self._token(sender, lane, lane.seq)
        return lane.valid

    def _token(self, sender: bytes, lane: _Lane, seq: int) -> bytes:
        token = lane.tokens.get(seq)
        if token is None:
            token = lane.tokens[seq] = lane_token(self.key, sender, self.receiver, lane.incarnation, seq)
        return token
