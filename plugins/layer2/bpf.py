"""Classic BPF filters for the responder's packet sockets, and attaching them.

A packet socket bound to ETH_P_ARP already sees only ARP; the filter also
drops non-Ethernet/IPv4 ARP and unknown opcodes in the kernel. The IPv6
socket sees every IPv6 frame on the link, which on a busy node is nearly
all traffic: its filter keeps only ICMPv6 Neighbor Solicitations and
Advertisements with hop limit 255 so Python never wakes for the rest.

The programs are tuples of (code, jt, jf, k), the kernel's `struct
sock_filter`; `run` is a tiny interpreter of the subset used here, so tests can
check the programs against the Python parsers on random frames without a
kernel.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26

_LD_H_ABS = 0x28
_LD_B_ABS = 0x30
_JEQ_K = 0x15
_RET_K = 0x06

# Accept at most this many bytes of a frame: ARP and NDP fit easily.
ACCEPT = 256
REJECT = 0

Program = tuple[tuple[int, int, int, int], ...]

# Offsets are from the start of the Ethernet header.
ARP_FILTER: Program = (
    (_LD_H_ABS, 0, 0, 12),
    (_JEQ_K, 0, 10, 0x0806),  # ethertype ARP, else reject
    (_LD_H_ABS, 0, 0, 14),
    (_JEQ_K, 0, 8, 1),  # hardware type Ethernet
    (_LD_H_ABS, 0, 0, 16),
    (_JEQ_K, 0, 6, 0x0800),  # protocol type IPv4
    (_LD_H_ABS, 0, 0, 18),
    (_JEQ_K, 0, 4, 0x0604),  # hardware length 6, protocol length 4
    (_LD_H_ABS, 0, 0, 20),
    (_JEQ_K, 1, 0, 1),  # request
    (_JEQ_K, 0, 1, 2),  # reply
    (_RET_K, 0, 0, ACCEPT),
    (_RET_K, 0, 0, REJECT),
)

NDP_FILTER: Program = (
    (_LD_H_ABS, 0, 0, 12),
    (_JEQ_K, 0, 6, 0x86DD),  # ethertype IPv6, else reject
    (_LD_H_ABS, 0, 0, 20),
    (_JEQ_K, 0, 4, 0x3AFF),  # next header ICMPv6 (58), hop limit 255
    (_LD_B_ABS, 0, 0, 54),
    (_JEQ_K, 1, 0, 135),  # Neighbor Solicitation
    (_JEQ_K, 0, 1, 136),  # Neighbor Advertisement
    (_RET_K, 0, 0, ACCEPT),
    (_RET_K, 0, 0, REJECT),
)


def attach(sock: socket.socket, program: Program) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer may go afterwards."""
    code = b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def run(program: Program, frame: bytes) -> int:
    """Interpret `program` on `frame` like the kernel: bytes to keep, 0 to drop.

    A load beyond the frame's end drops it, as the kernel does.
    """
    acc = 0
    pc = 0
    while pc < len(program):
        code, jt, jf, k = program[pc]
        if code == _LD_H_ABS:
            if k + 2 > len(frame):
                return 0
            acc = int.from_bytes(frame[k : k + 2], "big")
        elif code == _LD_B_ABS:
            if k + 1 > len(frame):
                return 0
            acc = frame[k]
        elif code == _JEQ_K:
            pc += jt if acc == k else jf
        elif code == _RET_K:
            return min(k, len(frame))
        else:
            raise ValueError(f"bpf opcode {code:#x} at {pc} is not supported by this interpreter")
        pc += 1
    return 0
