"""The responder thread's frame handling, driven directly over datagram socketpairs (no packet sockets)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

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
