"""The bounded receive turn with a fake socket and a fake clock: count and time budgets, screening, drop counts."""

from __future__ import annotations

import collections
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.membership import receiving
from supervisor.membership.codec import (
    MIN_PACKET,
    NO_DIGEST,
    DropReason,
    Heartbeat,
    HeartbeatWriter,
    PacketType,
    decode,
    encode,
    lane_fields,
    lane_token,
)
from supervisor.membership.receiving import (
    BATCHES_PER_INTERVAL,
    GUARD_SECONDS,
    LANE_WINDOW,
    MAX_GAP_SECONDS,
    TURNS_PER_SECOND,
    DropCounter,
    Lanes,
    Screen,
    TurnBudget,
    receive_gap,
    receive_turn,
)

PEER = ("10.0.0.2", 7946)
STRANGER = ("10.0.0.66", 40000)
KEY = b"0123456789abcdef-key"
INCARNATION = 1_765_000_000_123_456_789  # the receiver's


@dataclass
class FakeClock:
    now: float = 100.0


@dataclass
class FakeSocket:
    """A queue of datagrams, up to `per_call` per recv; each datagram costs `cost` seconds of the fake clock."""

    clock: FakeClock
    cost: float = 0.0
    queue: collections.deque[tuple[bytes, Any]] = field(default_factory=collections.deque)
    error: OSError | None = None
    per_call: int = 1
    calls: list[int] = field(default_factory=list)

    def recv(self, limit: int) -> list[tuple[bytes, Any, float]]:
        self.calls.append(limit)
        if self.error is not None:
            raise self.error
        out = [(*self.queue.popleft(), self.clock.now) for _ in range(min(limit, self.per_call, len(self.queue)))]
        self.clock.now += self.cost * len(out)
        return out


def genuine(seq: int, echo: int = INCARNATION, key: bytes = KEY) -> bytes:
    return encode(Heartbeat(type=PacketType.HEARTBEAT, sender="b", receiver="a", incarnation=1, seq=seq,
                            sent_at_ns=0, echo_incarnation=echo), key)


def turn(sock: FakeSocket, clock: FakeClock, budget: TurnBudget, drops: DropCounter | None = None,
         sources: frozenset[str] = frozenset({PEER[0]})) -> tuple[Any, list[bytes]]:
    handled: list[bytes] = []
    result = receive_turn(sock.recv, lambda data, source, arrived: handled.append(data),
                          screen=Screen(sources, INCARNATION), drops=drops or DropCounter(), budget=budget,
                          clock=lambda: clock.now)
    return result, handled


def test_an_empty_socket_ends_the_turn_at_once() -> None:
    clock = FakeClock()
    result, handled = turn(FakeSocket(clock), clock, TurnBudget())
    assert (result.received, result.cut_short, handled) == (0, False, [])


def test_a_turn_reads_everything_queued_when_it_fits_the_budget() -> None:
    clock = FakeClock()
    sock = FakeSocket(clock, cost=1e-6)
    sock.queue.extend((genuine(i), PEER) for i in range(10))
    result, handled = turn(sock, clock, TurnBudget(max_datagrams=100, max_seconds=1.0))
    assert (result.received, result.cut_short) == (10, False)
    assert handled == [genuine(i) for i in range(10)]


def test_the_count_budget_ends_a_turn_and_the_rest_waits() -> None:
    clock = FakeClock()
    sock = FakeSocket(clock)
    sock.queue.extend((genuine(i), PEER) for i in range(1000))
    result, handled = turn(sock, clock, TurnBudget(max_datagrams=64, max_seconds=1.0))
    assert (result.received, result.cut_short, len(handled)) == (64, True, 64)
    assert len(sock.queue) == 1000 - 64
    result, handled = turn(sock, clock, TurnBudget(max_datagrams=64, max_seconds=1.0))
    assert handled[0] == genuine(64)


def test_the_time_budget_ends_a_turn_whatever_the_count() -> None:
    # Each datagram costs 1 ms: a 5 ms budget reads 5, however many are queued.
    clock = FakeClock()
    sock = FakeSocket(clock, cost=0.001)
    sock.queue.extend((b"junk" * 20, STRANGER) for _ in range(10_000))
    start = clock.now
    result, _ = turn(sock, clock, TurnBudget(max_datagrams=10_000, max_seconds=0.005))
    assert result.cut_short and result.received == 5
    assert clock.now - start == pytest.approx(0.005)


@dataclass
class PreemptedSocket(FakeSocket):
    """Each recv costs `cost` of CPU and `cost + stolen` of wall clock (the thread was preempted)."""

    cpu: FakeClock = field(default_factory=FakeClock)
    stolen: float = 0.0

    def recv(self, limit: int) -> list[tuple[bytes, Any, float]]:
        data = super().recv(limit)
        self.cpu.now += self.cost * len(data)
        self.clock.now += self.stolen * len(data)
        return data


def cpu_turn(sock: PreemptedSocket, budget: TurnBudget) -> Any:
    return receive_turn(sock.recv, lambda data, source, arrived: None,
                        screen=Screen(frozenset({PEER[0]}), INCARNATION), drops=DropCounter(), budget=budget,
                        clock=lambda: sock.clock.now, cpu=lambda: sock.cpu.now)


def test_time_the_thread_spent_preempted_does_not_count_against_the_budget() -> None:
    # 10 datagrams of 0.1 ms CPU each, the thread off the CPU 20 ms after each:
    # 200 ms of wall clock, 1 ms of our own work. Not a flood: read them all.
    clock = FakeClock()
    sock = PreemptedSocket(clock, cost=0.0001, stolen=0.02)
    sock.queue.extend((genuine(i), PEER) for i in range(10))
    result = cpu_turn(sock, TurnBudget(max_datagrams=10_000, max_seconds=0.005))
    assert (result.received, result.cut_short) == (10, False)
    assert clock.now - 100.0 > 0.005


def test_the_time_budget_is_our_cpu_time_when_a_cpu_clock_is_given() -> None:
    # 1 ms of CPU per datagram and 1 ms stolen after each: 5 ms of CPU is 5 datagrams, not 2 or 3.
    clock = FakeClock()
    sock = PreemptedSocket(clock, cost=0.001, stolen=0.001)
    sock.queue.extend((b"junk" * 20, STRANGER) for _ in range(10_000))
    result = cpu_turn(sock, TurnBudget(max_datagrams=10_000, max_seconds=0.005))
    assert result.cut_short and result.received == 5
    assert sock.cpu.now - 100.0 == pytest.approx(0.005)


def test_a_turn_reads_at_least_one_datagram_even_on_a_slow_clock() -> None:
    clock = FakeClock()
    sock = FakeSocket(clock, cost=1.0)
    sock.queue.extend((genuine(i), PEER) for i in range(3))
    result, handled = turn(sock, clock, TurnBudget(max_datagrams=10, max_seconds=0.001))
    assert (result.received, len(handled), result.cut_short) == (1, 1, True)


def test_strangers_and_junk_are_counted_not_handled() -> None:
    clock = FakeClock()
    sock = FakeSocket(clock)
    sock.queue.extend([
        (genuine(1), STRANGER),  # a genuine packet from an address no peer has
        (b"ML\x01" + bytes(MIN_PACKET), PEER),  # plausible size and magic: worth decoding
        (b"\x00" * 10, PEER),
        (b"ML\x07" + bytes(MIN_PACKET), PEER),
        (genuine(2), PEER),
        (genuine(3), ("fe80::2%eth0", 7946, 0, 2)),  # link-local, scoped
    ])  # fmt: skip
    drops = DropCounter()
    result, handled = turn(sock, clock, TurnBudget(), drops, sources=frozenset({PEER[0], "fe80::2"}))
    assert result.received == 6
    assert handled == [b"ML\x01" + bytes(MIN_PACKET), genuine(2), genuine(3)]
    counts, last = drops.take()
    assert counts == {DropReason.UNKNOWN_SOURCE: 1, DropReason.MALFORMED: 1, DropReason.WRONG_VERSION: 1}
    assert last[DropReason.UNKNOWN_SOURCE][0] == STRANGER
    assert drops.take() == ({}, {})  # taking starts from zero again


def test_a_flood_costs_bounded_turns_and_one_count_per_reason() -> None:
    """100,000 junk datagrams: 196 turns of at most 512, every one counted, none handled."""
    clock = FakeClock()
    sock = FakeSocket(clock, cost=1e-6)
    sock.queue.extend((b"x" * 100, STRANGER) for _ in range(100_000))
    drops = DropCounter()
    turns = 0
    while sock.queue:
        result, handled = turn(sock, clock, TurnBudget(), drops)
        assert result.received <= 512 and handled == []
        turns += 1
    assert turns == -(-100_000 // 512)
    assert drops.take()[0] == {DropReason.UNKNOWN_SOURCE: 100_000}


def test_batches_never_take_more_than_the_count_budget_has_left() -> None:
    clock = FakeClock()
    sock = FakeSocket(clock, per_call=64)
    sock.queue.extend((genuine(i), PEER) for i in range(1000))
    result, handled = turn(sock, clock, TurnBudget(max_datagrams=100, max_seconds=1.0))
    assert (result.received, result.cut_short, len(handled)) == (100, True, 100)
    assert sock.calls == [64, 36]
    assert handled == [genuine(i) for i in range(100)]


def test_the_time_budget_is_looked_at_between_batches() -> None:
    # 1 ms per datagram, 64 a batch: the first batch outruns a 5 ms budget, and the turn ends after it.
    clock = FakeClock()
    sock = FakeSocket(clock, cost=0.001, per_call=64)
    sock.queue.extend((b"junk" * 20, STRANGER) for _ in range(1000))
    drops = DropCounter()
    result, _ = turn(sock, clock, TurnBudget(max_datagrams=10_000, max_seconds=0.005), drops)
    assert (result.received, result.cut_short) == (64, True)
    assert drops.take()[0] == {DropReason.UNKNOWN_SOURCE: 64}


def test_a_short_batch_is_read_again_until_the_socket_is_empty() -> None:
    clock = FakeClock()
    sock = FakeSocket(clock, per_call=64)
    sock.queue.extend((genuine(i), PEER) for i in range(130))
    result, handled = turn(sock, clock, TurnBudget(max_datagrams=512, max_seconds=1.0))
    assert (result.received, result.cut_short, len(handled)) == (130, False, 130)
    assert sock.calls == [64, 64, 64, 64]  # 64, 64, 2, then nothing queued


@given(st.lists(st.tuples(st.sampled_from(list(DropReason)), st.integers(0, 5)), max_size=50))
def test_counting_a_turns_drops_at_once_is_counting_them_one_by_one(drops: list[tuple[DropReason, int]]) -> None:
    one_by_one, at_once = DropCounter(), DropCounter()
    for reason, source in drops:
        one_by_one.add(reason, source)
    at_once.add_all([r for r, _ in drops], [s for _, s in drops])
    assert at_once.take() == one_by_one.take()


def test_a_socket_error_ends_the_turn() -> None:
    clock = FakeClock()
    sock = FakeSocket(clock, error=ConnectionRefusedError())
    result, handled = turn(sock, clock, TurnBudget())
    assert (result.received, result.cut_short, handled) == (0, False, [])


def test_packets_that_do_not_echo_our_incarnation_get_a_small_allowance_per_refill() -> None:
    """A spoofed flood from a peer's address that does not know our incarnation never reaches the HMAC.

    The real peer's heartbeats (echoing us) interleaved with it all get through.
    """
    clock = FakeClock()
    sock = FakeSocket(clock)
    screen = Screen(frozenset({PEER[0]}), INCARNATION, stale_per_second=8)
    drops = DropCounter()
    for i in range(2000):
        sock.queue.append((genuine(i, echo=0, key=b"attacker-guess-0123"), PEER))
        if i % 100 == 0:
            sock.queue.append((genuine(10_000 + i), PEER))
    handled: list[bytes] = []
    while sock.queue:
        receive_turn(sock.recv, lambda data, source, arrived: handled.append(data), screen=screen, drops=drops,
                     budget=TurnBudget(), clock=lambda: clock.now)
    real = [genuine(10_000 + i) for i in range(0, 2000, 100)]
    assert [h for h in handled if h in real] == real
    assert len(handled) == len(real) + 8  # the allowance, then nothing until the refill
    assert drops.take()[0] == {DropReason.STALE_ECHO: 2000 - 8}
    screen.refill()
    sock.queue.append((genuine(1, echo=0), PEER))  # a peer's first packet after a restart
    receive_turn(sock.recv, lambda data, source, arrived: handled.append(data), screen=screen, drops=drops,
                 budget=TurnBudget(), clock=lambda: clock.now)
    assert handled[-1] == genuine(1, echo=0)


def test_the_screen_follows_a_new_incarnation() -> None:
    screen = Screen(frozenset({PEER[0]}), INCARNATION, stale_per_second=0)
    assert screen(genuine(1), PEER) is None
    screen.incarnation = INCARNATION + 5
    assert screen.incarnation == INCARNATION + 5
    assert screen(genuine(1), PEER) is DropReason.STALE_ECHO
    assert screen(genuine(1, echo=INCARNATION + 5), PEER) is None


@pytest.mark.parametrize(
    ("peers", "interval", "gap"),
    [
        (2, 0.1, 0.0),  # 20 datagrams/s: each read as it arrives
        (20, 0.1, 0.0),  # 200/s: still
        (21, 0.1, 0.1 / BATCHES_PER_INTERVAL),  # past TURNS_PER_SECOND: read in batches, half an interval apart
        (250, 0.1, 0.05),
        (50, 0.05, 0.025),  # the default interval at 50 peers
        (400, 0.004, 1 / TURNS_PER_SECOND),  # never more often than TURNS_PER_SECOND
        (250, 0.25, MAX_GAP_SECONDS),  # the default interval at 250 peers: a LEAVING is read at most 50 ms late
        (200, 1.0, 0.0),  # the rate counts, not the peers: 200/s at a 1 s interval
        (250, 1.0, MAX_GAP_SECONDS),
        (0, 0.1, 0.0),
    ],
    ids=["2-peers", "20-peers", "21-peers", "250-peers", "50-peers-default", "fast", "250-peers-default",
         "200-peers-1s", "250-peers-1s", "alone"],
)
def test_the_receive_gap_only_batches_when_datagrams_come_faster_than_the_turn_rate(
    peers: int, interval: float, gap: float
) -> None:
    assert receive_gap(peers, interval) == gap



# -- the fast lane (tokens) -------------------------------------------------------

PEER_INCARNATION = 1_765_000_000_000_000_001


def tokened(seq: int, *, sender: str = "b", incarnation: int = PEER_INCARNATION, key: bytes = KEY,
            echo: int = INCARNATION) -> bytes:
    """What peer `sender`'s HeartbeatWriter sends: the token slot holds lane_token."""
    return HeartbeatWriter(sender, key).write(PacketType.HEARTBEAT, "a", incarnation=incarnation, seq=seq,
                                              sent_at_ns=0, echo_incarnation=echo, digest=NO_DIGEST)


def forged(seq: int, *, sender: str = "b", incarnation: int = PEER_INCARNATION) -> bytes:
    """What an attacker who sees every heartbeat can send: the right fields, a guessed token, a wrong MAC."""
    return encode(Heartbeat(type=PacketType.HEARTBEAT, sender=sender, receiver="a", incarnation=incarnation,
                            seq=seq, sent_at_ns=int.from_bytes(secrets.token_bytes(8), "big"),
                            echo_incarnation=INCARNATION), b"attacker-guess-0123")


def decoded(data: bytes) -> Heartbeat:
    hb = decode(data, key=KEY, receiver="a", known={"b", "c"})
    assert isinstance(hb, Heartbeat)
    return hb


def test_the_writer_puts_the_lane_token_in_the_token_slot_only_with_a_key() -> None:
    data = tokened(7)
    assert lane_fields(data) == (b"b", PEER_INCARNATION, 7, lane_token(KEY, b"b", b"a", PEER_INCARNATION, 7))
    assert decoded(data).sent_at_ns == int.from_bytes(lane_token(KEY, b"b", b"a", PEER_INCARNATION, 7), "big")
    # Each sequence number and each direction has its own token.
    assert lane_token(KEY, b"b", b"a", PEER_INCARNATION, 8) != lane_fields(data)[3]
    assert lane_token(KEY, b"a", b"b", PEER_INCARNATION, 7) != lane_fields(data)[3]
    insecure = HeartbeatWriter("b", None).write(PacketType.HEARTBEAT, "a", incarnation=1, seq=7, sent_at_ns=12345,
                                                echo_incarnation=0, digest=NO_DIGEST)
    assert lane_fields(insecure)[3] == (12345).to_bytes(8, "big")


def test_a_peer_with_a_lane_gets_hmacs_for_its_next_tokens_and_forgeries_only_an_allowance() -> None:
    lanes = Lanes(KEY, "a", frozenset({"b", "c"}), unproven_per_second=4)
    lanes.guard(0.0)
    # No lane yet (not heard since we started): everything that echoes us is worth an HMAC, as before.
    assert [lanes.check(forged(s)) for s in range(1, 10)] == [None] * 9
    lanes.heard(decoded(tokened(10)))
    assert lanes.lane("b") == (PEER_INCARNATION, 10)
    # The peer's next heartbeats, also after some were lost, and its LEAVING.
    assert lanes.check(tokened(11)) is None
    assert lanes.check(tokened(14)) is None
    assert lanes.check(tokened(10 + LANE_WINDOW)) is None
    # Forgeries with the right incarnation and a plausible seq, replays, another
    # incarnation, past the window: the allowance, then bad_token.
    attempts = [forged(11), forged(12), tokened(10), tokened(9), tokened(11, incarnation=PEER_INCARNATION + 1),
                tokened(11 + LANE_WINDOW), forged(13), forged(14)]
    assert [lanes.check(d) for d in attempts] == [None] * 4 + [DropReason.BAD_TOKEN] * 4
    # The genuine one still passes with the allowance spent, and refill restores it.
    assert lanes.check(tokened(12)) is None
    lanes.refill()
    assert lanes.check(forged(13)) is None
    # A name that is no peer's is refused before the HMAC (decode would say the same after it).
    assert lanes.check(forged(1, sender="zz")) is DropReason.UNKNOWN_NODE


def test_a_lane_follows_only_newer_authentic_packets_and_a_restart() -> None:
    lanes = Lanes(KEY, "a", frozenset({"b"}), unproven_per_second=0)
    lanes.guard(0.0)
    lanes.heard(decoded(tokened(10)))
    lanes.heard(decoded(tokened(5)))  # a replay of an older heartbeat: the lane stays
    assert lanes.lane("b") == (PEER_INCARNATION, 10)
    lanes.heard(decoded(tokened(12)))
    assert lanes.lane("b") == (PEER_INCARNATION, 12)
    assert lanes.check(tokened(12)) is DropReason.BAD_TOKEN  # already used
    # The peer restarted: its first packet (echo 0) passes the stale allowance and its MAC; the lane moves to it.
    restarted = tokened(1, incarnation=PEER_INCARNATION + 10**9, echo=0)
    lanes.heard(decoded(restarted))
    assert lanes.lane("b") == (PEER_INCARNATION + 10**9, 1)
    assert lanes.check(tokened(2, incarnation=PEER_INCARNATION + 10**9)) is None
    assert lanes.check(tokened(13)) is DropReason.BAD_TOKEN  # the old life's tokens are over


def test_an_older_peer_without_tokens_keeps_every_datagram_checked() -> None:
    """Mixed versions: a peer that writes its clock in the token slot has no lane, so nothing it sends is refused."""
    lanes = Lanes(KEY, "a", frozenset({"b"}), unproven_per_second=0)
    lanes.guard(0.0)
    old = encode(Heartbeat(type=PacketType.HEARTBEAT, sender="b", receiver="a", incarnation=PEER_INCARNATION,
                           seq=10, sent_at_ns=1_765_000_000_000_000_000, echo_incarnation=INCARNATION), KEY)
    lanes.heard(decoded(old))
    assert lanes.lane("b") is None
    assert lanes.check(old) is None
    assert lanes.check(forged(11)) is None
    # An upgrade restarts the peer (a new incarnation): it has a lane from then on; a downgrade loses it.
    lanes.heard(decoded(tokened(20, incarnation=PEER_INCARNATION + 1)))
    assert lanes.lane("b") == (PEER_INCARNATION + 1, 20)
    assert lanes.check(forged(21, incarnation=PEER_INCARNATION + 1)) is DropReason.BAD_TOKEN
    lanes.heard(decoded(encode(decoded(old)._replace(incarnation=PEER_INCARNATION + 2, seq=1), KEY)))
    assert lanes.lane("b") is None
    assert lanes.check(forged(2, incarnation=PEER_INCARNATION + 2)) is None


def test_removed_peers_lose_their_lanes() -> None:
    lanes = Lanes(KEY, "a", frozenset({"b", "c"}), unproven_per_second=0)
    lanes.guard(0.0)
    lanes.heard(decoded(tokened(10)))
    lanes.heard(decoded(tokened(10, sender="c")))
    lanes.peers = frozenset({"c"})
    assert (lanes.lane("b"), lanes.lane("c")) == (None, (PEER_INCARNATION, 10))
    assert lanes.check(tokened(11)) is DropReason.UNKNOWN_NODE


def test_an_echoing_flood_claiming_a_proven_peer_costs_no_hmac_past_the_allowance() -> None:
    """The sighted attacker (BENCHMARKS.md, spoofed-echo): 20,000 forgeries with the peer's address, incarnation
    and next sequence numbers, the peer's real heartbeats among them; only the allowance and the real ones are
    handled (decoded, an HMAC each), every real one is."""
    clock = FakeClock()
    sock = FakeSocket(clock)
    lanes = Lanes(KEY, "a", frozenset({"b"}), unproven_per_second=16)
    lanes.heard(decoded(tokened(1)))
    screen = Screen(frozenset({PEER[0]}), INCARNATION, lanes=lanes)
    # What the worker does: the first datagram that fails its MAC switches the guard on.
    lanes.guard(0.0)
    drops = DropCounter()
    real = [tokened(seq) for seq in range(2, 22)]
    for seq, data in enumerate(real, start=2):
        for i in range(1000):
            sock.queue.append((forged(seq + 1 + i % 3), PEER))
        sock.queue.append((data, PEER))
    handled: list[bytes] = []

    def handle(data: bytes, source: Any, arrived: float) -> None:
        handled.append(data)
        hb = decode(data, key=KEY, receiver="a", known={"b"})
        if isinstance(hb, Heartbeat):
            lanes.heard(hb)

    while sock.queue:
        receive_turn(sock.recv, handle, screen=screen, drops=drops, budget=TurnBudget(), clock=lambda: clock.now)
    assert [h for h in handled if h in real] == real
    assert len(handled) == len(real) + 16
    assert drops.take()[0] == {DropReason.BAD_TOKEN: 20_000 - 16}
    assert lanes.lane("b") == (PEER_INCARNATION, 21)


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=200), st.sampled_from([True, False]))
def test_any_datagram_gets_a_decision_from_the_screen_with_lanes(noise: bytes, at: int, lane: bool) -> None:
    """Fuzz: a genuine datagram with any bytes overwritten (name lengths, fields, the echo) never raises."""
    lanes = Lanes(KEY, "a", frozenset({"b"}), unproven_per_second=1)
    lanes.guard(0.0)
    if lane:
        lanes.heard(decoded(tokened(10)))
    screen = Screen(frozenset({PEER[0]}), INCARNATION, lanes=lanes)
    data = tokened(11)
    at = min(at, len(data))
    mutated = data[:at] + noise + data[at + len(noise):]
    for datagram in (mutated, mutated[: at + 1], data + noise):
        assert screen(datagram, PEER) is None or isinstance(screen(datagram, PEER), DropReason)


def test_calm_lanes_cost_no_hmac_and_a_failed_mac_guards_them_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without forgeries (nothing failed its MAC) a genuine heartbeat costs no token; the guard engages at once."""
    computed: list[int] = []

    def counting_token(key: bytes, sender: bytes, receiver: bytes, incarnation: int, seq: int) -> bytes:
        computed.append(seq)
        return lane_token(key, sender, receiver, incarnation, seq)

    monkeypatch.setattr(receiving, "lane_token", counting_token)
    lanes = Lanes(KEY, "a", frozenset({"b"}), unproven_per_second=0)
    for seq in range(1, 100):
        assert lanes.check(tokened(seq)) is None
        lanes.heard(decoded(tokened(seq)))
    assert lanes.check(forged(100)) is None  # calm: a forgery goes on to its (failing) MAC check...
    assert computed == []
    lanes.guard(50.0)  # ...which makes the worker guard the lanes
    assert lanes.check(forged(100)) is DropReason.BAD_TOKEN
    assert lanes.check(tokened(100)) is None
    assert len(computed) == 2  # the last token heard (is b's a token?) and seq 100's, each once
    lanes.calm(50.0 + GUARD_SECONDS - 0.1)
    assert lanes.check(forged(101)) is DropReason.BAD_TOKEN
    lanes.calm(50.0 + GUARD_SECONDS)
    assert lanes.check(forged(101)) is None


def _slow(screen: Screen) -> Screen:
    """The same Screen with the fast lane's heads forgotten: every datagram is judged field by field."""
    assert screen.lanes is not None
    screen.lanes.heads.clear()
    return screen


def test_the_fast_lane_learns_heads_only_for_us_and_a_few_per_peer() -> None:
    lanes = Lanes(KEY, "a", frozenset({"b", "c"}), unproven_per_second=0)
    lanes.guard(0.0)
    lanes.heard(decoded(tokened(10)))
    screen = Screen(frozenset({PEER[0]}), INCARNATION, lanes=lanes)
    assert screen(forged(11), PEER) is DropReason.BAD_TOKEN
    assert list(lanes.heads.values()) == [b"b"]
    # Another receiver's name, any flags byte beyond the four known combinations: not remembered.
    other = bytearray(forged(12))
    other[4] = 0xF0
    assert screen(bytes(other), PEER) is DropReason.BAD_TOKEN
    to_someone_else = encode(Heartbeat(type=PacketType.HEARTBEAT, sender="b", receiver="x", seq=12, sent_at_ns=0,
                                       incarnation=PEER_INCARNATION, echo_incarnation=INCARNATION), b"guess-0123")
    screen(to_someone_else, PEER)
    assert len(lanes.heads) == 1
    lanes.peers = frozenset({"c"})
    assert lanes.heads == {}


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=120), st.integers(min_value=1, max_value=80),
       st.sampled_from([PEER, STRANGER]))
def test_the_fast_lane_gives_the_verdict_the_field_by_field_checks_give(
    noise: bytes, at: int, seq: int, source: tuple[str, int]
) -> None:
    """A Screen that learnt the peer's heads (each datagram judged by its head, echo and token) says what one
    that checks every field in order says, for the peer's next heartbeats, forgeries, and mutations of both."""
    verdicts = []
    for fast in (True, False):
        lanes = Lanes(KEY, "a", frozenset({"b", "c"}), unproven_per_second=2)
        lanes.guard(0.0)
        lanes.heard(decoded(tokened(10)))
        screen = Screen(frozenset({PEER[0]}), INCARNATION, lanes=lanes)
        screen(forged(11), PEER)  # learns b's head (and spends one of the allowance, in both)
        if not fast:
            _slow(screen)
        assert bool(lanes.heads) is fast
        out = []
        for data in (tokened(seq), forged(seq), tokened(seq, sender="c"), forged(seq, incarnation=1)):
            mutated = data[:at] + noise + data[at + len(noise) :]
            for datagram in (data, mutated):
                out.append(screen(datagram, source))
                if not fast:
                    lanes.heads.clear()
        verdicts.append(out)
    assert verdicts[0] == verdicts[1]
