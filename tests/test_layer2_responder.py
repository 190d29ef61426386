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
