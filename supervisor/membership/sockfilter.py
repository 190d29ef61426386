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

`run` interprets the program in Python like the kernel, so the pure tests
compare it with the Screen on random datagrams without a socket.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from supervisor.membership.codec import MAGIC, MAX_PACKET, MIN_PACKET, VERSION

SO_ATTACH_FILTER = 26
SKF_NET_OFF = -0x100000
# The kernel's BPF_MAXINSNS: with more peers than fit, only sizes and magic are filtered.
MAX_INSTRUCTIONS = 4096

LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_W_IND, LD_W_LEN = 0x20, 0x28, 0x30, 0x40, 0x80
AND_K, ADD_X, TAX = 0x54, 0x0C, 0x07
JA, JEQ_K, JGT_K, JGE_K = 0x05, 0x15, 0x25, 0x35
RET_K = 0x06

UDP_HEADER = 8
ACCEPT = 0xFFFF  # bytes kept: the whole datagram
REJECT = 0
# The echo sits after prefix (7), the two names, incarnation, seq and sent_at (24).
_ECHO_AFTER_NAMES = UDP_HEADER + 7 + 24

Instruction = tuple[int, int, int, int]
Program = tuple[Instruction, ...]


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
    body: list[Instruction | tuple[str, str]] = [
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
    program = head + _resolve(body)
    if len(program) > MAX_INSTRUCTIONS:
        # Thousands of peers: keep the size and magic checks, leave sources to the Screen.
        return (*head, (RET_K, 0, 0, ACCEPT))
    return tuple(program)


def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address.partition("%")[0]).packed  # fe80::1%eth0: the scope is not on the wire


def _resolve(body: list[Instruction | tuple[str, str]]) -> list[Instruction]:
    labels: dict[str, int] = {}
    pc = 0
    for item in body:
        if item[0] == "label":
            labels[str(item[1])] = pc
        else:
            pc += 1
    out: list[Instruction] = []
    for item in body:
        if item[0] == "label":
            continue
        if item[0] == "ja":
            out.append((JA, 0, 0, labels[str(item[1])] - len(out) - 1))
        else:
            code, jt, jf, k = item  # type: ignore[misc]
            out.append((int(code), int(jt), int(jf), int(k)))
    return out


def attach(sock: socket.socket, program: Program) -> None:
    """SO_ATTACH_FILTER, replacing any filter already attached (atomically: no datagram sees none)."""
    code = b"".join(struct.pack("HBBI", c, jt, jf, k & 0xFFFFFFFF) for c, jt, jf, k in program)
    buffer = ctypes.create_string_buffer(code)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(buffer)))


def run(program: Program, ip_header: bytes, datagram: bytes) -> int:
    """Interpret `program` like the kernel on a UDP socket: bytes kept, 0 when dropped.

    `datagram` starts at the UDP header; loads at SKF_NET_OFF + k read
    `ip_header`. A load beyond either drops the datagram, as in the kernel.
    """
    acc = x = pc = 0
    while 0 <= pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        if code in (LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_W_IND):
            size = {LD_W_ABS: 4, LD_H_ABS: 2, LD_B_ABS: 1, LD_W_IND: 4}[code]
            at = k + x if code == LD_W_IND else k
            data = datagram
            if at < 0:
                data, at = ip_header, at - SKF_NET_OFF
            if at < 0 or at + size > len(data):
                return 0
            acc = int.from_bytes(data[at : at + size], "big")
        elif code == LD_W_LEN:
            acc = len(datagram)
        elif code == AND_K:
            acc &= k
        elif code == ADD_X:
            acc = (acc + x) & 0xFFFFFFFF
        elif code == TAX:
            x = acc
        elif code == JA:
            pc += k
        elif code in (JEQ_K, JGT_K, JGE_K):
            hit = acc == k if code == JEQ_K else acc > k if code == JGT_K else acc >= k
            pc += jt if hit else jf
        elif code == RET_K:
            return min(k, len(datagram))
        else:
            raise ValueError(f"bpf opcode {code:#x} at {pc - 1} is not supported by this interpreter")
    return 0
