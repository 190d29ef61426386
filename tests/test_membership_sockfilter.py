"""The heartbeat socket's kernel filter: the program against the Screen, then in a real kernel.

The pure half interprets the program (`sockfilter.run`) on datagrams and IP
headers and compares its verdict with what `receiving.Screen` decides; the
kernel half attaches it to UDP sockets on loopback (IPv4 and IPv6) and checks
that the kernel keeps exactly what the interpreter keeps.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import time

import pytest

from supervisor import bpf
from supervisor.membership.codec import MAX_PACKET, MIN_PACKET, Heartbeat, PacketType, echo_field, encode, screen
from supervisor.membership.sockfilter import Peer, build, run

OURS = 1_700_000_000_123_456_789
PEERS = [Peer("10.0.0.2", True), Peer("10.0.0.3", False), Peer("fd00::2", True), Peer("fe80::3", False)]


def ip_header(source: str) -> bytes:
    packed = ipaddress.ip_address(source).packed
    if len(packed) == 4:
        return bytes([0x45, 0]) + bytes(10) + packed + bytes(4)
    return bytes([0x60]) + bytes(7) + packed + bytes(16)


def udp(payload: bytes) -> bytes:
    return bytes(8) + payload


def heartbeat(sender: str = "n2", receiver: str = "n1", echo: int = OURS, key: bytes | None = b"k" * 32) -> bytes:
    hb = Heartbeat(type=PacketType.HEARTBEAT, sender=sender, receiver=receiver, incarnation=5, seq=1,
                   sent_at_ns=time.time_ns(), echo_incarnation=echo)  # fmt: skip
    return encode(hb, key)


def expected(peers: list[Peer], source: str, payload: bytes) -> bool:
    """The Screen's rule, restated: a peer's address, plausible, and for a strict peer our echo."""
    by_address = {ipaddress.ip_address(p.address.partition("%")[0]): p for p in peers}
    peer = by_address.get(ipaddress.ip_address(source))
    if peer is None or screen(payload) is not None:
        return False
    return not peer.strict or echo_field(payload) == OURS.to_bytes(8, "big")


def test_a_strict_peer_gets_in_only_with_our_incarnation() -> None:
    program = build(PEERS, OURS)
    assert run(program, ip_header("10.0.0.2"), udp(heartbeat())) > 0
    assert run(program, ip_header("10.0.0.2"), udp(heartbeat(echo=OURS - 1))) == 0
    assert run(program, ip_header("10.0.0.2"), udp(heartbeat(echo=0))) == 0
    # Names of other lengths move the echo: the offset is computed from them.
    assert run(program, ip_header("fd00::2"), udp(heartbeat(sender="a-much-longer-name", receiver="x"))) > 0
    assert run(program, ip_header("fd00::2"), udp(heartbeat(sender="a", receiver="y" * 200, echo=1))) == 0


def test_a_peer_not_proven_alive_gets_in_with_any_echo() -> None:
    # Its first packets after a restart (ours or its own) echo an old incarnation or 0.
    program = build(PEERS, OURS)
    assert run(program, ip_header("10.0.0.3"), udp(heartbeat(echo=0))) > 0
    assert run(program, ip_header("fe80::3"), udp(heartbeat(echo=OURS - 1))) > 0


def test_other_sources_sizes_and_magic_are_refused() -> None:
    program = build(PEERS, OURS)
    good = heartbeat()
    assert run(program, ip_header("10.0.0.9"), udp(good)) == 0
    assert run(program, ip_header("fd00::9"), udp(good)) == 0
    assert run(program, ip_header("::ffff:10.0.0.2"), udp(good)) == 0  # an IPv6 packet is compared as IPv6
    assert run(program, ip_header("10.0.0.3"), udp(b"XL" + good[2:])) == 0
    assert run(program, ip_header("10.0.0.3"), udp(good[:2] + b"\x02" + good[3:])) == 0
    assert run(program, ip_header("10.0.0.3"), udp(good[: MIN_PACKET - 1])) == 0
    assert run(program, ip_header("10.0.0.3"), udp(good + bytes(MAX_PACKET))) == 0
    assert run(build([], OURS), ip_header("10.0.0.2"), udp(good)) == 0


def test_the_program_agrees_with_the_screen_on_random_datagrams() -> None:
    rng = random.Random(15)
    sources = [p.address for p in PEERS] + ["10.0.0.9", "fd00::9", "10.0.0.1"]
    for _ in range(3000):
        source = rng.choice(sources)
        kind = rng.randrange(4)
        if kind == 0:
            payload = rng.randbytes(rng.randrange(0, 200))
        elif kind == 1:
            payload = b"ML\x01" + rng.randbytes(rng.randrange(0, 120))
        else:
            sender, receiver = "n" * rng.randrange(1, 40), "m" * rng.randrange(1, 40)
            echo, key = rng.choice([OURS, OURS + 1, 0]), rng.choice([None, b"k" * 32])
            payload = heartbeat(sender, receiver, echo=echo, key=key)
            if kind == 3:
                payload = payload[: rng.randrange(len(payload) + 1)]
        verdict = run(build(PEERS, OURS), ip_header(source), udp(payload)) > 0
        assert verdict == expected(PEERS, source, payload), (source, payload.hex())


def test_many_peers_fit_with_far_jumps_and_too_many_fall_back_to_sizes_only() -> None:
    many = [Peer(f"fd00::{i:x}", i % 2 == 0) for i in range(1, 400)]
    program = build(many, OURS)
    assert len(program) <= bpf.MAX_INSTRUCTIONS
    assert run(program, ip_header("fd00::1"), udp(heartbeat(echo=0))) > 0  # odd: not strict
    assert run(program, ip_header("fd00::2"), udp(heartbeat(echo=0))) == 0
    assert run(program, ip_header("fd00::2"), udp(heartbeat())) > 0
    huge = build([Peer(f"fd00::{i:x}", True) for i in range(1, 1000)], OURS)
    assert run(huge, ip_header("10.9.9.9"), udp(heartbeat(echo=0))) > 0  # the Screen does the rest
    assert run(huge, ip_header("10.9.9.9"), udp(b"junk" * 20)) == 0


# -- in the kernel (loopback; the sockets are the test's own) -------------------------------------------


def kernel_keeps(family: socket.AddressFamily, receiver: str, sender: str, program: bpf.Program,
                 payloads: list[bytes]) -> list[bytes]:  # fmt: skip
    with socket.socket(family, socket.SOCK_DGRAM) as r, socket.socket(family, socket.SOCK_DGRAM) as s:
        r.bind((receiver, 0))
        bpf.attach(r, program)
        s.bind((sender, 0))
        for p in payloads:
            s.sendto(p, r.getsockname()[:2])
        r.settimeout(0.3)
        kept = []
        try:
            while True:
                kept.append(r.recv(4096))
        except TimeoutError:
            return kept


BASE = 30 + os.getpid() % 200


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_the_kernel_keeps_what_the_interpreter_keeps(family: socket.AddressFamily) -> None:
    receiver, sender = ("::1", "::1") if family == socket.AF_INET6 else (f"127.0.0.{BASE}", f"127.0.0.{BASE + 1}")
    payloads = [heartbeat(), heartbeat(echo=0), heartbeat(sender="x" * 30, receiver="y"), b"ML\x01" + bytes(60),
                heartbeat()[:20], b"garbage" * 10]  # fmt: skip
    for peers in ([Peer(sender, True)], [Peer(sender, False)], [Peer("10.1.2.3", False), Peer("fd00::7", False)]):
        program = build(peers, OURS)
        want = [p for p in payloads if run(program, ip_header(sender), udp(p)) > 0]
        assert kernel_keeps(family, receiver, sender, program, payloads) == want, peers
    # The three cases differ, so the comparison means something.
    strict = build([Peer(sender, True)], OURS)
    assert kernel_keeps(family, receiver, sender, strict, payloads) == [payloads[0], payloads[2]]
