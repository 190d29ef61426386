"""Classic BPF filters for the responder's packet sockets, and attaching them.

A packet socket bound to ETH_P_ARP already sees only ARP; the filter also
drops non-Ethernet/IPv4 ARP and unknown opcodes in the kernel. The IPv6
socket sees every IPv6 frame on the link, which on a busy node is nearly
all traffic: its filter keeps only ICMPv6 Neighbor Solicitations and
Advertisements with hop limit 255 so Python never wakes for the rest.

The instructions, attaching and the interpreter are the host's classic BPF
module (`supervisor.api.bpf`, shared with the membership heartbeat filter);
`run` interprets a program on a frame as the kernel does, so tests check the
programs against the Python parsers on random frames without a kernel.
"""

from __future__ import annotations

from supervisor.api import bpf as classic

_LD_H_ABS = classic.LD_H_ABS
_LD_B_ABS = classic.LD_B_ABS
_JEQ_K = classic.JEQ_K
_RET_K = classic.RET_K

# Accept at most this many bytes of a frame: ARP and NDP fit easily.
ACCEPT = 256
REJECT = 0

Program = classic.Program

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


# A packet socket shows the program the whole Ethernet frame: the shared
# interpreter and attach need nothing more.
attach = classic.attach
run = classic.run
