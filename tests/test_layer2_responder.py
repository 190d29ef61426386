"""The responder thread's frame handling, driven directly over datagram socketpairs (no packet sockets)."""

from __future__ import annotations

import ipaddress
import select
import socket
from collections.abc import Callable, Iterator

import pytest

from plugins.layer2 import frames
from plugins.layer2.responder import Port, Responder

OURS = bytes.fromhex("0200000000a1")
OTHER = bytes.fromhex("0200000000ff")
V4 = ipaddress.ip_address("10.0.10.10").packed
V6 = ipaddress.ip_address("fd00::10").packed
ALL_NODES = ipaddress.ip_address("ff02::1").packed


@pytest.fixture
def ports() -> Iterator[dict[str, tuple[Port, socket.socket]]]:
    """Two ports, eth0 and eth1, each with the far end of its socketpair to inject frames."""
    made: dict[str, tuple[Port, socket.socket]] = {}
    ends: list[socket.socket] = []
    for index, name in enumerate(("eth0", "eth1"), start=2):
        arp, arp_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ndp, ndp_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sock in (arp, ndp):
            sock.setblocking(False)
        ends += [arp, arp_far, ndp, ndp_far]
        made[name] = (Port(name=name, index=index, mac=OURS, arp=arp, ndp=ndp), arp_far)
        made[name + "/ndp"] = (made[name][0], ndp_far)
    yield made
    for sock in ends:
        sock.close()


def gratuitous_from_other(ip: bytes) -> bytes:
    return frames.build_arp(
        op=frames.ARP_REPLY, eth_src=OTHER, eth_dst=frames.BROADCAST_MAC,
        sender_mac=OTHER, sender_ip=ip, target_mac=OTHER, target_ip=ip,
    )  # fmt: skip


def na_from_other(ip: bytes) -> bytes:
    return frames.build_na(
        eth_src=OTHER, eth_dst=frames.multicast_mac(ALL_NODES), src_ip=ip, dst_ip=ALL_NODES, target=ip,
        flags=frames.NA_FLAG_OVERRIDE,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("family", "received_on", "duplicates"),
    [
        pytest.param(4, "eth0", 1, id="arp-on-the-announcing-interface"),
        pytest.param(4, "eth1", 0, id="arp-on-another-segment"),
        pytest.param(6, "eth0", 1, id="na-on-the-announcing-interface"),
        pytest.param(6, "eth1", 0, id="na-on-another-segment"),
    ],
)
def test_a_claim_counts_as_duplicate_only_where_we_announce_the_ip(
    ports: dict[str, tuple[Port, socket.socket]], family: int, received_on: str, duplicates: int
) -> None:
    responder = Responder()
    responder.set_owned({V4: frozenset({"eth0"})}, {V6: frozenset({"eth0"})})
    if family == 4:
        port, far = ports[received_on]
        far.send(gratuitous_from_other(V4))
        responder._drain_arp(port)
    else:
        port, far = ports[received_on + "/ndp"]
        far.send(na_from_other(V6))
        responder._drain_ndp(port)
    assert len(responder.duplicates) == duplicates


def request_for(ip: bytes) -> bytes:
    return frames.build_arp(
        op=frames.ARP_REQUEST, eth_src=OTHER, eth_dst=frames.BROADCAST_MAC,
        sender_mac=OTHER, sender_ip=ipaddress.ip_address("10.0.10.100").packed, target_mac=bytes(6), target_ip=ip,
    )  # fmt: skip


@pytest.mark.parametrize("family", [pytest.param(4, id="arp"), pytest.param(6, id="ndp")])
def test_a_yielded_ip_is_watched_for_claims_but_never_answered(
    ports: dict[str, tuple[Port, socket.socket]], family: int
) -> None:
    responder = Responder()
    responder.set_owned({}, {})
    responder.set_watched({V4: frozenset({"eth0"})}, {V6: frozenset({"eth0"})})
    if family == 4:
        port, far = ports["eth0"]
        far.send(gratuitous_from_other(V4))
        far.send(request_for(V4))
        responder._drain_arp(port)
    else:
        port, far = ports["eth0/ndp"]
        far.send(na_from_other(V6))
        responder._drain_ndp(port)
    assert [d.mac for d in responder.duplicates] == [OTHER]
    far.setblocking(False)
    with pytest.raises(BlockingIOError):
        far.recv(1500)  # no reply of any kind
    assert responder.responses == {}


@pytest.mark.parametrize("family", [pytest.param(4, id="arp-probe"), pytest.param(6, id="ns-probe")])
def test_a_yielders_probe_is_answered_by_the_keeper_and_the_answer_holds_the_yield(
    ports: dict[str, tuple[Port, socket.socket]], family: int
) -> None:
    port, arp_far = ports["eth0"]
    _, ndp_far = ports["eth0/ndp"]
    inject = arp_far if family == 4 else ndp_far
    keeper = Responder()
    keeper.set_owned({V4: frozenset({"eth0"})}, {V6: frozenset({"eth0"})})
    inject.send(frames.arp_probe(OTHER, V4) if family == 4 else frames.ns_probe(OTHER, V6))
    keeper._drain_arp(port) if family == 4 else keeper._drain_ndp(port)
    assert not keeper.duplicates, "a probe claims nothing"
    answer = arp_far.recv(1500)  # every frame goes out on the port's first socket
    # The yielder watches the IP: the keeper's answer is a claim from the keeper's MAC.
    yielder = Responder()
    yielder.set_watched({V4: frozenset({"eth0"})}, {V6: frozenset({"eth0"})})
    inject.send(answer)
    yport = Port(name="eth0", index=2, mac=OTHER, arp=port.arp, ndp=port.ndp)
    yielder._drain_arp(yport) if family == 4 else yielder._drain_ndp(yport)
    assert [(d.mac, d.ip) for d in yielder.duplicates] == [(OURS, V4 if family == 4 else V6)]


def _requester(i: int) -> tuple[bytes, bytes]:
    """The MAC and IPv4 address of the i-th asking host, all distinct."""
    return bytes.fromhex("02aa0000") + i.to_bytes(2, "big"), bytes([10, 0, 11 + i // 250, 1 + i % 250])


def _serve_until_empty(drain: Callable[[], None], sock: socket.socket) -> None:
    """What the serving loop does: drain while poll says there is more (a drain stops after ROUNDS batches)."""
    while select.select([sock], [], [], 0)[0]:
        drain()


def _read_all(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    out = []
    while True:
        try:
            out.append(sock.recv(1500))
        except BlockingIOError:
            return out


@pytest.mark.parametrize("burst", [pytest.param(1, id="one-request"), pytest.param(300, id="several-batches")])
def test_a_burst_of_requests_gets_one_correct_reply_per_owned_request_and_none_for_foreign_ips(
    ports: dict[str, tuple[Port, socket.socket]], burst: int
) -> None:
    """Requests for an owned IP and for a foreign one, interleaved, more than one batch's worth (BATCH = 64)."""
    port, far = ports["eth0"]
    for sock in (far, port.arp):  # room for the whole burst and all its replies
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    foreign = ipaddress.ip_address("10.0.10.11").packed
    responder = Responder()
    responder.set_owned({V4: frozenset({"eth0"})}, {})
    asked: set[tuple[bytes, bytes]] = set()
    for i in range(burst):
        mac, ip = _requester(i)
        for target in (V4, foreign):
            far.send(frames.build_arp(
                op=frames.ARP_REQUEST, eth_src=mac, eth_dst=frames.BROADCAST_MAC,
                sender_mac=mac, sender_ip=ip, target_mac=bytes(6), target_ip=target,
            ))  # fmt: skip
        asked.add((mac, ip))
    _serve_until_empty(lambda: responder._drain_arp(port), port.arp)
    replies = [frames.parse_arp(raw) for raw in _read_all(far)]
    assert len(replies) == burst
    answered = set()
    for reply in replies:
        assert reply is not None
        assert (reply.op, reply.eth_src, reply.sender_mac, reply.sender_ip) == (frames.ARP_REPLY, OURS, OURS, V4)
        assert reply.eth_dst == reply.target_mac
        answered.add((reply.target_mac, reply.target_ip))
    assert answered == asked, "every requester answered once, at its own MAC and IP"
    assert responder.requests == {V4: burst} and responder.responses == {V4: burst}
    assert not responder.duplicates


def test_a_burst_of_solicitations_is_answered_per_owned_target(ports: dict[str, tuple[Port, socket.socket]]) -> None:
    port, arp_far = ports["eth0"]
    _, ndp_far = ports["eth0/ndp"]
    for sock in (ndp_far, port.arp):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    foreign = ipaddress.ip_address("fd00::11").packed
    responder = Responder()
    responder.set_owned({}, {V6: frozenset({"eth0"})})
    burst = 150
    for i in range(burst):
        mac = _requester(i)[0]
        src = ipaddress.ip_address(f"fd00::1:{i + 1:x}").packed
        for target in (V6, foreign):
            ndp_far.send(frames.build_ns(eth_src=mac, src_ip=src, target=target))
    _serve_until_empty(lambda: responder._drain_ndp(port), port.ndp)
    replies = [frames.parse_ndp(raw) for raw in _read_all(arp_far)]
    assert len(replies) == burst
    assert {(r.type, r.target, r.link_addr) for r in replies if r is not None} == {(frames.NDP_NA, V6, OURS)}
    assert len({r.eth_dst for r in replies if r is not None}) == burst
    assert responder.requests == {V6: burst} and responder.responses == {V6: burst}


def test_a_reply_the_kernel_refuses_is_not_counted_as_sent(ports: dict[str, tuple[Port, socket.socket]]) -> None:
    port, far = ports["eth0"]
    far.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    responder = Responder()
    responder.set_owned({V4: frozenset({"eth0"})}, {})
    for _ in range(100):
        far.send(request_for(V4))
    port.arp.shutdown(socket.SHUT_WR)  # every send now fails with EPIPE; reading still works
    _serve_until_empty(lambda: responder._drain_arp(port), port.arp)
    assert responder.requests == {V4: 100}
    assert responder.responses == {}
