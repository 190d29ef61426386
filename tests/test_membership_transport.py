"""The heartbeat socket's receive side: datagrams come with the time they arrived, not the time they were read.

The worker reads in batches (receiving.receive_gap); a heartbeat must count
from its arrival, or the read delay would look like lateness to the adaptive
deadline. Real sockets on loopback; the wall clock is stepped by patching
`time.time` as the transport sees it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest

from supervisor.config.model import Config, MembershipSettings, Node, Settings
from supervisor.membership import transport as transport_module
from supervisor.membership.codec import Heartbeat, PacketType, encode
from supervisor.membership.receiving import TurnBudget
from supervisor.membership.transport import Transport
from supervisor.membership.worker import MembershipWorkerSettings, _Worker
from tests.runtime_helpers import free_port

OURS, PEER = "127.0.0.1", "127.0.0.2"
KEY = b"transport-test-key-0123456789abcdef"


def config() -> Config:
    """Node a (us) and node b (the peer), each with its loopback address."""
    nodes = (Node(name="a", addresses=(ipaddress.IPv4Address(OURS),)),
             Node(name="b", addresses=(ipaddress.IPv4Address(PEER),)))  # fmt: skip
    return Config(nodes=nodes, settings=Settings(membership=MembershipSettings()))


def peer_socket() -> socket.socket:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((PEER, 0))
    return peer


@pytest.fixture
def pair() -> Iterator[tuple[Transport, socket.socket]]:
    transport = Transport("a")
    transport.configure(config(), free_port(OURS, socket.SOCK_DGRAM))
    peer = peer_socket()
    try:
        yield transport, peer
    finally:
        peer.close()
        transport.close()


def heartbeat(seq: int, echo: int = 0) -> bytes:
    """b's heartbeat to a: the socket filter lets it through (size, magic, a peer's source); with a's
    incarnation as `echo` the worker also counts it as proof of life."""
    return encode(Heartbeat(type=PacketType.HEARTBEAT, sender="b", receiver="a", incarnation=7, seq=seq,
                            sent_at_ns=0, echo_incarnation=echo), KEY)  # fmt: skip


def stamping(transport: Transport, peer: socket.socket, timeout: float = 10.0) -> None:
    """Wait until the kernel stamps datagrams as they arrive.

    The first socket on a host that asks for stamps turns stamping on
    asynchronously (net_enable_timestamp defers it to a work queue, and the
    last one closing turns it off the same way): until then a datagram is
    stamped when it is read, i.e. counts from the read, as before the stamps.
    """
    assert transport.bound is not None
    give_up = time.monotonic() + timeout
    while True:
        transport.recv(64)
        peer.sendto(heartbeat(0), transport.bound)
        time.sleep(0.02)
        read_at = time.monotonic()
        got = transport.recv(64)
        if got and got[-1][2] < read_at - 0.01:
            return
        assert time.monotonic() < give_up, "the kernel never stamped a datagram on arrival"


def send(peer: socket.socket, transport: Transport, payload: bytes) -> tuple[float, float]:
    """Send one datagram; the monotonic clock just before and just after (loopback queues it in the call)."""
    assert transport.bound is not None
    before = time.monotonic()
    peer.sendto(payload, transport.bound)
    return before, time.monotonic()


def test_a_datagram_read_late_keeps_its_arrival_time(pair: tuple[Transport, socket.socket]) -> None:
    transport, peer = pair
    stamping(transport, peer)
    transport.recv(64)  # the previous read: before anything was sent
    sent = [send(peer, transport, heartbeat(i)) for i in range(3)]
    time.sleep(0.05)  # read late, as a batched turn does
    read_at = time.monotonic()
    got = transport.recv(64)
    assert [(data, source[0]) for data, source, _ in got] == [(heartbeat(i), PEER) for i in range(3)]
    for (_, _, arrived), (before, after) in zip(got, sent, strict=True):
        # The two clocks are read a few microseconds apart to convert the kernel's wall-clock stamp.
        assert before - 0.002 <= arrived <= after + 0.002, (before, arrived, after)
        assert arrived < read_at - 0.04


def test_a_forward_wall_clock_step_makes_a_datagram_no_older_than_the_previous_read(
    pair: tuple[Transport, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    transport, peer = pair
    transport.recv(64)
    previous_read = transport._last_read
    send(peer, transport, heartbeat(1))
    time.sleep(0.01)
    wall = time.time
    monkeypatch.setattr(transport_module.time, "time", lambda: wall() + 100.0)  # NTP stepped the clock
    ((_, _, arrived),) = transport.recv(64)
    assert arrived == previous_read


def test_a_backward_wall_clock_step_makes_a_datagram_no_newer_than_its_read(
    pair: tuple[Transport, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    transport, peer = pair
    transport.recv(64)
    send(peer, transport, heartbeat(1))
    wall = time.time
    monkeypatch.setattr(transport_module.time, "time", lambda: wall() - 100.0)
    ((_, _, arrived),) = transport.recv(64)
    assert arrived == transport._last_read


def test_without_the_kernels_stamps_a_datagram_arrives_when_it_is_read(
    pair: tuple[Transport, socket.socket],
) -> None:
    transport, peer = pair
    transport._stamped = False  # a kernel that refused SO_TIMESTAMPNS
    send(peer, transport, heartbeat(1))
    time.sleep(0.02)
    ((_, _, arrived),) = transport.recv(64)
    assert arrived == transport._last_read


# -- the worker: what it does with the arrival times ----------------------------------------------------------------


class Outbox:
    def put(self, msg: object) -> None:
        pass


def worker_and_peer(budget: TurnBudget | None = None) -> tuple[_Worker, socket.socket]:
    settings = MembershipWorkerSettings(node_name="a", key=KEY, ports=(("a", free_port(OURS, socket.SOCK_DGRAM)),),
                                        receive_budget=budget or TurnBudget())
    worker = _Worker(settings, Outbox())
    worker._configure(config(), time.monotonic())
    return worker, peer_socket()


def test_the_worker_counts_a_heartbeat_read_late_from_its_arrival() -> None:
    worker, peer = worker_and_peer()
    try:
        assert worker.transport.bound is not None and worker.detector is not None
        stamping(worker.transport, peer)
        sent = time.monotonic()
        peer.sendto(heartbeat(1, worker.incarnation), worker.transport.bound)
        time.sleep(0.05)  # a batched read: the loop comes round later
        read = time.monotonic()
        worker._receive(read)
        heard = worker.detector.peers()["b"].heard_at
        assert heard is not None and sent - 0.002 <= heard < read - 0.04
    finally:
        peer.close()
        worker.close()


def test_a_turn_cut_short_reads_again_at_once_not_a_gap_later() -> None:
    worker, peer = worker_and_peer(TurnBudget(max_datagrams=2))
    try:
        assert worker.transport.bound is not None
        worker.receive_gap = 0.05  # as with many peers
        for seq in range(1, 6):
            peer.sendto(heartbeat(seq, worker.incarnation), worker.transport.bound)
        now = time.monotonic()
        worker._receive(now)  # 2 of 5: cut short
        assert worker.next_receive == now
        worker._receive(now + 0.001)  # 4 of 5: cut short again
        worker._receive(now + 0.002)  # the last one: the socket is empty, so the gap applies
        assert worker.next_receive == now + 0.002 + 0.05
    finally:
        peer.close()
        worker.close()
