"""Fuzzing the layer 2 parsers and the responder: any bytes off the wire → a decision, never an exception.

The responder is driven over datagram socketpairs as in
tests/test_layer2_responder.py. Besides "never raises", the property that
matters most: whatever arrives, every answer sent is for an IP we own on
that interface (never answer ARP/NDP for an IP we do not own).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.layer2 import frames
from plugins.layer2.responder import Port, Responder

SETTINGS = settings(
    max_examples=int(os.environ.get("METALLOID_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
OURS = bytes.fromhex("0200000000a1")
OTHER = bytes.fromhex("0200000000ff")
OWNED4 = ipaddress.ip_address("10.0.10.10").packed
OWNED6 = ipaddress.ip_address("fd00::10").packed
NOT_OWNED4 = ipaddress.ip_address("10.0.10.11").packed
NOT_OWNED6 = ipaddress.ip_address("fd00::11").packed
FROM6 = ipaddress.ip_address("fd00::99").packed


def valid_frames() -> list[bytes]:
    made = []
    for target in (OWNED4, NOT_OWNED4):
        made.append(frames.build_arp(op=frames.ARP_REQUEST, eth_src=OTHER, eth_dst=frames.BROADCAST_MAC,
                                     sender_mac=OTHER, sender_ip=bytes(4), target_mac=frames.ZERO_MAC,
                                     target_ip=target))
        made.append(frames.arp_probe(OTHER, target))
    for target in (OWNED6, NOT_OWNED6):
        made.append(frames.build_ns(eth_src=OTHER, src_ip=FROM6, target=target))
        made.append(frames.ns_probe(OTHER, target))
        made.append(frames.unsolicited_na(OTHER, target))
    return made


VALID = valid_frames()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        action = draw(st.sampled_from(["flip", "truncate", "extend", "set"]))
        if action == "flip" and frame:
            at = draw(st.integers(min_value=0, max_value=len(frame) - 1))
            frame[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "truncate":
            del frame[draw(st.integers(min_value=0, max_value=len(frame))):]
        elif action == "extend":
            frame += draw(st.binary(max_size=64))
        elif frame:
            at = draw(st.integers(min_value=0, max_value=len(frame) - 1))
            frame[at] = draw(st.integers(min_value=0, max_value=255))
    return bytes(frame)


ANY_FRAME = st.one_of(st.binary(max_size=300), mutated())


@SETTINGS
@given(frame=ANY_FRAME)
def test_parsers_return_a_packet_or_none(frame: bytes) -> None:
    arp = frames.parse_arp(frame)
    if arp is not None:
        assert arp.op in (frames.ARP_REQUEST, frames.ARP_REPLY)
        assert len(arp.sender_mac) == 6 and len(arp.sender_ip) == 4 and len(arp.target_ip) == 4
    ndp = frames.parse_ndp(frame)
    if ndp is not None:
        assert ndp.type in (frames.NDP_NS, frames.NDP_NA)
        assert len(ndp.target) == 16 and (ndp.link_addr is None or len(ndp.link_addr) == 6)


@SETTINGS
@given(batch=st.lists(ANY_FRAME, min_size=1, max_size=8))
def test_the_responder_decides_on_any_frame_and_answers_only_for_owned_ips(batch: list[bytes]) -> None:
    arp, arp_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ndp, ndp_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for sock in (arp, ndp, arp_far):
            sock.setblocking(False)
        port = Port(name="eth0", index=2, mac=OURS, arp=arp, ndp=ndp)
        responder = Responder()
        responder.set_owned({OWNED4: frozenset({"eth0"})}, {OWNED6: frozenset({"eth0"})})
        for frame in batch:
            if not frame:
                continue
            arp_far.send(frame)
            ndp_far.send(frame)
        responder._drain_arp(port)
        responder._drain_ndp(port)
        while True:
            try:
                answer = arp_far.recv(2048)
            except BlockingIOError:
                break
            arp_answer = frames.parse_arp(answer)
            ndp_answer = frames.parse_ndp(answer)
            assert arp_answer is not None or ndp_answer is not None, answer.hex()
            if arp_answer is not None:
                assert arp_answer.op == frames.ARP_REPLY and arp_answer.sender_ip == OWNED4
                assert arp_answer.sender_mac == OURS
            if ndp_answer is not None:
                assert ndp_answer.type == frames.NDP_NA and ndp_answer.target == OWNED6
                assert ndp_answer.link_addr == OURS
        assert set(responder.responses) <= {OWNED4, OWNED6}
    finally:
        for sock in (arp, arp_far, ndp, ndp_far):
            sock.close()


def test_the_property_can_see_an_answer() -> None:
    """The responder does answer a valid request for an owned IP here, so the property is not vacuous."""
    arp, arp_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ndp, ndp_far = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for sock in (arp, ndp):
            sock.setblocking(False)
        responder = Responder()
        responder.set_owned({OWNED4: frozenset({"eth0"})}, {OWNED6: frozenset({"eth0"})})
        port = Port(name="eth0", index=2, mac=OURS, arp=arp, ndp=ndp)
        arp_far.send(VALID[0])
        ndp_far.send(VALID[4])
        responder._drain_arp(port)
        responder._drain_ndp(port)
        assert responder.responses == {OWNED4: 1, OWNED6: 1}
    finally:
        for sock in (arp, arp_far, ndp, ndp_far):
            sock.close()
