"""The heartbeat socket's kernel filter: junk is dropped before it takes a place in the receive buffer.

`receiving.Screen` already refuses a datagram for the price of a set lookup,
but only once it is read; under a flood the kernel drops whatever does not fit
in the socket's receive buffer, real heartbeats included, and three heartbeats
in a row lost that way is a false death. This classic BPF program
(SO_ATTACH_FILTER) runs the same checks in the kernel, before the datagram is
queued, so a flood the filter refuses never occupies the buffer:

1. size between codec.MIN_PACKET and codec.MAX_PACKET, magic b"ML", version;
2. the IP source address is a configured peer's (IPv4, or IPv6 compared on
   all 16 bytes; the IP version is read from the packet, so an IPv4 datagram
   on a dual-stack IPv6 socket is checked as IPv4);
3. for a peer that is `strict` (alive and proven alive in this run: see the
   worker), the datagram echoes our current incarnation (codec.echo_field,
   read at an offset computed from the two name lengths).

A peer that is not strict (never heard since we started, dead, left) is
accepted on address alone: its first packets after either side restarted
echo an old incarnation (or 0), and it must be heard to learn ours, so
refusing them would keep it out for ever. The Screen then limits what those
cost (64 HMACs a second); docs/failover.md ("Floods") states what is left.

Facts checked on Linux (tests/test_membership_sockfilter.py runs the program
in the kernel): on a UDP socket the program sees the datagram from the UDP
header (payload at offset 8, the length includes the 8 header bytes), and
loads at SKF_NET_OFF + k read the IP header.

The instructions, the assembler, attaching and the interpreter are
`supervisor.bpf`'s, shared with layer 2's packet socket filters; `run` is
the interpreter with a UDP socket's view, so the pure tests compare the
program with the Screen on random datagrams without a socket.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from supervisor.bpf import (
    ADD_X,
    AND_K,
    JEQ_K,
    JGE_K,
    JGT_K,
    LD_B_ABS,
    LD_H_ABS,
    LD_W_ABS,
    LD_W_IND,
    LD_W_LEN,
    MAX_INSTRUCTIONS,
    RET_K,
    SKF_NET_OFF,
    TAX,
    Instruction,
    Item,
    Program,
    assemble,
)
from supervisor.bpf import run as run_bpf
from supervisor.membership.codec import MAGIC, MAX_PACKET, MIN_PACKET, VERSION

UDP_HEADER = 8
ACCEPT = 0xFFFF  # bytes kept: the whole datagram
REJECT = 0
# The echo sits after prefix (7), the two names, incarnation, seq and token (24).
_ECHO_AFTER_NAMES = UDP_HEADER + 7 + 24



@dataclass(frozen=True, slots=True)
class Peer:
    address: str
    # Only datagrams echoing our incarnation are accepted from it.
    strict: bool


def build(peers: Iterable[Peer], incarnation: int) -> Program:
    """The filter for these peer addresses and our current incarnation."""
    peers = sorted(set(peers), key=lambda p: (p.address, p.strict))
    head: list[Instruction] = [
        (LD_W_LEN, 0, 0, 0),
        (JGE_K, 1, 0, UDP_HEADER + MIN_PACKET),
        (RET_K, 0, 0, REJECT),
        (JGT_K, 0, 1, UDP_HEADER + MAX_PACKET),
        (RET_K, 0, 0, REJECT),
        (LD_H_ABS, 0, 0, UDP_HEADER),
        (JEQ_K, 1, 0, int.from_bytes(MAGIC, "big")),
        (RET_K, 0, 0, REJECT),
        (LD_B_ABS, 0, 0, UDP_HEADER + 2),
        (JEQ_K, 1, 0, VERSION),
        (RET_K, 0, 0, REJECT),
    ]
    v4 = [(_packed(p.address), p.strict) for p in peers if len(_packed(p.address)) == 4]
    v6 = [(_packed(p.address), p.strict) for p in peers if len(_packed(p.address)) == 16]
    # Sources: each match is a forward `ja` to STRICT or ACCEPT (32-bit offsets,
    # so any number of peers fits); a miss falls through to the next address.
    body: list[Item] = [
        (LD_B_ABS, 0, 0, SKF_NET_OFF),
        (AND_K, 0, 0, 0xF0),
        (JEQ_K, 0, 1, 0x40),
        ("ja", "v4"),
        (JEQ_K, 1, 0, 0x60),
        (RET_K, 0, 0, REJECT),
    ]
    for packed, strict in v6:
        words = [int.from_bytes(packed[i : i + 4], "big") for i in range(0, 16, 4)]
        for i, word in enumerate(words):
            body += [(LD_W_ABS, 0, 0, SKF_NET_OFF + 8 + 4 * i), (JEQ_K, 0, 2 * (3 - i) + 1, word)]
        body.append(("ja", "strict" if strict else "accept"))
    body += [(RET_K, 0, 0, REJECT), ("label", "v4"), (LD_W_ABS, 0, 0, SKF_NET_OFF + 12)]
    for packed, strict in v4:
        body += [(JEQ_K, 0, 1, int.from_bytes(packed, "big")), ("ja", "strict" if strict else "accept")]
    echo = incarnation.to_bytes(8, "big")
    body += [
        (RET_K, 0, 0, REJECT),
        ("label", "strict"),
        (LD_B_ABS, 0, 0, UDP_HEADER + 5),
        (TAX, 0, 0, 0),
        (LD_B_ABS, 0, 0, UDP_HEADER + 6),
        (ADD_X, 0, 0, 0),
        (TAX, 0, 0, 0),
        (LD_W_IND, 0, 0, _ECHO_AFTER_NAMES),
        (JEQ_K, 1, 0, int.from_bytes(echo[:4], "big")),
        (RET_K, 0, 0, REJECT),
        (LD_W_IND, 0, 0, _ECHO_AFTER_NAMES + 4),
        (JEQ_K, 1, 0, int.from_bytes(echo[4:], "big")),
        (RET_K, 0, 0, REJECT),
        ("label", "accept"),
        (RET_K, 0, 0, ACCEPT),
    ]
    program = head + assemble(body)
    if len(program) > MAX_INSTRUCTIONS:  # the kernel would refuse it
        # Thousands of peers: keep the size and magic checks, leave sources to the Screen.
        return (*head, (RET_K, 0, 0, ACCEPT))
    return tuple(program)


@functools.lru_cache(maxsize=4096)
def _packed(address: str) -> bytes:
    # Cached: the filter is rebuilt whenever a peer rises or dies, and parsing
    # every peer's address each time was O(peers) ipaddress work per change
    # (250 peers coming up: 62,500 parses).
    return ipaddress.ip_address(address.partition("%")[0]).packed  # fe80::1%eth0: the scope is not on the wire


def run(program: Program, ip_header: bytes, datagram: bytes) -> int:
    """Interpret `program` like the kernel on a UDP socket: bytes kept, 0 when dropped.

    `datagram` starts at the UDP header; loads at SKF_NET_OFF + k read `ip_header`.
    """
    return run_bpf(program, datagram, net=ip_header)
