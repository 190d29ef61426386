"""Classic BPF socket filters: the instructions, a label assembler, attaching, and an interpreter.

Two parts of metalloid drop traffic in the kernel before Python wakes for it:
the layer 2 responder's packet sockets (only ARP and NDP reach it) and the
membership heartbeat socket (only well-formed datagrams from peers). Both
write classic BPF (`struct sock_filter`: code, jt, jf, k) and attach it with
SO_ATTACH_FILTER; this module is what they share. Plugins reach it as
`supervisor.api.bpf`.

`run` interprets the subset of instructions used here exactly as the kernel
does (a load beyond the data drops the packet; RET keeps at most the packet's
length), so tests check the programs against the Python parsers on random
input without a socket or root. What a program sees depends on the socket: a
packet socket shows the Ethernet frame, a UDP socket the datagram from its UDP
header, with the IP header reachable at SKF_NET_OFF + k (`net`).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Iterable

SO_ATTACH_FILTER = 26
# Loads at SKF_NET_OFF + k read the network (IP) header instead of the packet.
SKF_NET_OFF = -0x100000
# The kernel's BPF_MAXINSNS: a longer program is refused.
MAX_INSTRUCTIONS = 4096

LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_W_IND, LD_W_LEN = 0x20, 0x28, 0x30, 0x40, 0x80
AND_K, ADD_X, TAX = 0x54, 0x0C, 0x07
JA, JEQ_K, JGT_K, JGE_K = 0x05, 0x15, 0x25, 0x35
RET_K = 0x06

_LOAD_SIZE = {LD_W_ABS: 4, LD_H_ABS: 2, LD_B_ABS: 1, LD_W_IND: 4}

Instruction = tuple[int, int, int, int]
Program = tuple[Instruction, ...]
# `assemble`'s input: instructions, ("label", name) marking the next one, ("ja", name) jumping there.
Item = Instruction | tuple[str, str]


def assemble(body: Iterable[Item]) -> list[Instruction]:
    """Resolve ("label", name) and forward ("ja", name) into instructions.

    `ja` takes a 32-bit offset, so a jump reaches any length of program where
    the 8-bit jt/jf of a conditional would not.
    """
    items = list(body)
    labels: dict[str, int] = {}
    pc = 0
    for item in items:
        if item[0] == "label":
            labels[str(item[1])] = pc
        else:
            pc += 1
    out: list[Instruction] = []
    for item in items:
        if item[0] == "label":
            continue
        if item[0] == "ja":
            out.append((JA, 0, 0, labels[str(item[1])] - len(out) - 1))
        else:
            code, jt, jf, k = item  # type: ignore[misc]
            out.append((int(code), int(jt), int(jf), int(k)))
    return out


def attach(sock: socket.socket, program: Program) -> None:
    """SO_ATTACH_FILTER, replacing any filter already attached (atomically: no packet sees none).

    The kernel copies the program, so the buffer may go afterwards.
    """
    code = b"".join(struct.pack("HBBI", c, jt, jf, k & 0xFFFFFFFF) for c, jt, jf, k in program)
    buffer = ctypes.create_string_buffer(code)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(buffer)))


def run(program: Program, packet: bytes, *, net: bytes = b"") -> int:
    """Interpret `program` like the kernel: bytes kept, 0 when dropped.

    `packet` is what the socket sees; loads at SKF_NET_OFF + k read `net`
    (the IP header). A load beyond either drops the packet, as in the kernel.
    """
    acc = x = pc = 0
    while 0 <= pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        if code in _LOAD_SIZE:
            size = _LOAD_SIZE[code]
            at = k + x if code == LD_W_IND else k
            data = packet
            if at < 0:
                data, at = net, at - SKF_NET_OFF
            if at < 0 or at + size > len(data):
                return 0
            acc = int.from_bytes(data[at : at + size], "big")
        elif code == LD_W_LEN:
            acc = len(packet)
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
            return min(k, len(packet))
        else:
            raise ValueError(f"bpf opcode {code:#x} at {pc - 1} is not supported by this interpreter")
    return 0
