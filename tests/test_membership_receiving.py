"""The bounded receive turn with a fake socket and a fake clock: count and time budgets, screening, drop counts."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import pytest

from supervisor.membership.codec import MIN_PACKET, DropReason, Heartbeat, PacketType, encode
from supervisor.membership.receiving import (
    TURNS_PER_SECOND,
    DropCounter,
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
    """A queue of datagrams; each recv costs `cost` seconds of the fake clock."""

    clock: FakeClock
    cost: float = 0.0
    queue: collections.deque[tuple[bytes, Any]] = field(default_factory=collections.deque)
    error: OSError | None = None

    def recv(self) -> tuple[bytes, Any]:
        if self.error is not None:
            raise self.error
        if not self.queue:
            raise BlockingIOError
        self.clock.now += self.cost
        return self.queue.popleft()


def genuine(seq: int, echo: int = INCARNATION, key: bytes = KEY) -> bytes:
    return encode(Heartbeat(type=PacketType.HEARTBEAT, sender="b", receiver="a", incarnation=1, seq=seq,
                            sent_at_ns=0, echo_incarnation=echo), key)


def turn(sock: FakeSocket, clock: FakeClock, budget: TurnBudget, drops: DropCounter | None = None,
         sources: frozenset[str] = frozenset({PEER[0]})) -> tuple[Any, list[bytes]]:
    handled: list[bytes] = []
    result = receive_turn(sock.recv, lambda data, source: handled.append(data), screen=Screen(sources, INCARNATION),
                          drops=drops or DropCounter(), budget=budget, clock=lambda: clock.now)
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
        receive_turn(sock.recv, lambda data, source: handled.append(data), screen=screen, drops=drops,
                     budget=TurnBudget(), clock=lambda: clock.now)
    real = [genuine(10_000 + i) for i in range(0, 2000, 100)]
    assert [h for h in handled if h in real] == real
    assert len(handled) == len(real) + 8  # the allowance, then nothing until the refill
    assert drops.take()[0] == {DropReason.STALE_ECHO: 2000 - 8}
    screen.refill()
    sock.queue.append((genuine(1, echo=0), PEER))  # a peer's first packet after a restart
    receive_turn(sock.recv, lambda data, source: handled.append(data), screen=screen, drops=drops,
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
        (21, 0.1, 1 / TURNS_PER_SECOND),  # past TURNS_PER_SECOND: read in batches, at most every 5 ms
        (250, 0.1, 0.005),
        (200, 1.0, 0.0),  # the rate counts, not the peers: 200/s at a 1 s interval
        (250, 1.0, 0.005),
        (0, 0.1, 0.0),
    ],
    ids=["2-peers", "20-peers", "21-peers", "250-peers", "200-peers-1s", "250-peers-1s", "alone"],
)
def test_the_receive_gap_only_batches_when_datagrams_come_faster_than_the_turn_rate(
    peers: int, interval: float, gap: float
) -> None:
    assert receive_gap(peers, interval) == gap

