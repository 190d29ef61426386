"""ARP requests and Neighbor Solicitations for owned IPs answered in the kernel, at ingress, by an eBPF program.

The responder thread answers a request in ~20 us more than the kernel takes
for the node's own address: the frame is queued to a packet socket, the
thread wakes (on an idle VM, another vCPU's wake-up from halt), Python reads,
checks and sends. This program answers the same requests in the softirq that
received them, from a hash map the control side keeps equal to what the
responder answers: no wake-up, no copy to user space, and the answer does
not wait for Python's GIL or a descheduled thread on a loaded node.

The map, keyed by (packed IPv4, ifindex), holds one entry per owned IP per
interface it is answered on (answer=1) and per yielded IP (answer=0, see
`conflicts`), with the interface's MAC and two counters the program adds to.
The program answers (rewrites the request into the reply and sends it back
out of the interface: TCX_REDIRECT) only a well-formed Ethernet/IPv4 ARP
request, untagged, addressed to this host or broadcast, whose target has an
answer=1 entry for this interface, and which is none of these, handed on
untouched (TCX_NEXT) to the kernel and the responder's packet socket:
- its sender IP is in the map: another MAC claiming an IP we hold (or
  yielded), which the responder reports as a duplicate and does not answer;
- its sender IP is its target IP (a gratuitous ARP request: same reason);
- it comes from one of our own interfaces' MACs (a second map, "ours").
These are `responder._answer_arp`'s rules; tests run both on the same frames.

IPv6 the same way, from a second map keyed by (packed IPv6, ifindex): a
Neighbor Solicitation that `frames.parse_ndp` accepts (IPv6, ICMPv6, hop
limit 255, code 0, a right checksum), for an answer=1 entry, not from one of
our MACs, is rewritten into `frames.na_reply`'s Advertisement (Solicited and
Override, our MAC as the target link-layer address, the checksum computed
with bpf_csum_diff). Only the solicitation every resolving host sends is
answered here: 86 bytes, from a unicast address, with exactly one option,
the source link-layer address, so that the Advertisement has the same length
and is written over it. Duplicate address detection (from ::, answered to
all-nodes), solicitations without that option or with more, padded frames,
and every Advertisement (a claim, reported by the responder) go on to the
responder, which answers them as before.

What the program never does is answer for an IP not in the map: an IP is
deleted from it before `Responder.set_owned` returns, and the tcx link dies
with the process (see `supervisor.api.ebpf`), so a killed speaker stops
answering at once. Anything the map cannot hold (full) stays with the
responder, which answers every owned IP itself, until removals make room: the
map only moves where the answer is made, never what is answered.

Counters: the program counts per entry; `refresh_counts` folds the growth
into per-IP totals (monotonic across an entry's removal), which the announcer
reports as metallb_layer2_requests_received / responses_sent beside the
responder's own counts.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.api import ebpf

log = logging.getLogger(__name__)

# The instructions used, by the names the kernel's headers give them.
ADD64_K, ADD64_X, ATOMIC_ADD_DW, CALL, EXIT = ebpf.ADD64_K, ebpf.ADD64_X, ebpf.ATOMIC_ADD_DW, ebpf.CALL, ebpf.EXIT
AND64_K, OR64_X, XOR64_K, RSH64_K, MOV32_X = ebpf.AND64_K, ebpf.OR64_X, ebpf.XOR64_K, ebpf.RSH64_K, ebpf.MOV32_X
JEQ_K, JEQ_X, JGT_X, JEQ32_K = ebpf.JEQ_K, ebpf.JEQ_X, ebpf.JGT_X, ebpf.JEQ32_K
JNE32_K, JNE_K, LDX_B = ebpf.JNE32_K, ebpf.JNE_K, ebpf.LDX_B
LDX_H, LDX_W, LDX_DW, MOV64_K, MOV64_X = ebpf.LDX_H, ebpf.LDX_W, ebpf.LDX_DW, ebpf.MOV64_K, ebpf.MOV64_X
ST_H, ST_W, STX_H, STX_W = ebpf.ST_H, ebpf.ST_W, ebpf.STX_H, ebpf.STX_W
Label, MapFd = ebpf.Label, ebpf.MapFd
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# (IPv4 in network order, ifindex): the key the program builds on its stack; (IPv6, ifindex) for NDP.
KEY = struct.Struct("<4sI")
KEY6 = struct.Struct("<16sI")
_INDEX = struct.Struct("<I")  # a key is the packed IP and this
# requests, responses (the program's atomic adds), interface MAC, answer flag.
VALUE = struct.Struct("<QQ6sB1x")
# Entries are (IP, interface) pairs, allocated as inserted: room for a large
# pool on a few interfaces; beyond it the responder answers the rest.
MAX_ENTRIES = 65536
ENV = "METALLOID_LAYER2_KERNEL_ARP"
# The program answers only while the announcer keeps renewing this lease (every
# tick, 50 ms): a speaker frozen or starved (SIGSTOP, a stuck interpreter)
# stops answering within it, as its responder thread would at once, well
# before peers declare it dead (3 heartbeat intervals, 0.3 s by default) and
# another node takes its IPs. A lapse under load only hands the answers back
# to the responder thread.
LEASE_SECONDS = 0.2
_LEASE_KEY = bytes(4)
# Reading every entry's counters is one batched system call per 256 entries;
# metrics are scraped every 15-60 s, so once a second is plenty.
COUNTS_SECONDS = 1.0

# Our interfaces' MACs, each padded to 8 bytes: the key the program builds from a frame's source.
MAX_MACS = 1024
_MAC_KEY_SIZE = 8
_PACKET_OTHERHOST = 3
_ETH_P_ARP_BE = 0x0608  # htons(0x0806) as the little-endian u32 loads below see it
_ETH_P_IPV6_BE = 0xDD86
_ARP_FRAME_LEN = 42
# A Neighbor Solicitation with exactly one option, the source link-layer
# address: what every host sends when resolving (RFC 4861 4.3). Its
# Advertisement has the same length, so the frame is rewritten in place.
# Other solicitations (duplicate address detection from ::, no or more
# options, padding) are handed on to the responder.
_NS_FRAME_LEN = 86
# The pseudo-header's two words besides the addresses (payload length 32,
# next header 58), as 32-bit little-endian loads of their big-endian bytes.
_NDP_PSEUDO_WORDS = int.from_bytes(b"\x00\x00\x00\x20", "little") + int.from_bytes(b"\x00\x00\x00\x3a", "little")


def _u32le(raw: bytes) -> int:
    """The value a little-endian u32/u16 load of these packet bytes gives (compared by JNE32_K)."""
    return int.from_bytes(raw, "little")


def program() -> list[ebpf.Item]:
    """The tcx ingress program; maps "owned", "owned6", "ours", "lease". Packet offsets are from the Ethernet header."""

    def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> ebpf.Insn:
        return ebpf.Insn(code, dst, src, off, imm)

    def jump(code: int, dst: int, label: str, *, src: int = 0, imm: int = 0) -> ebpf.Insn:
        return ebpf.Insn(code, dst, src, 0, imm, label)

    def lookup_key_at_r10_minus_8() -> list[ebpf.Item]:
        return [MapFd(R1, "owned"), insn(MOV64_X, R2, R10), insn(ADD64_K, R2, imm=-8),
                insn(CALL, imm=ebpf.FUNC_MAP_LOOKUP_ELEM)]  # fmt: skip

    def packet_bounds(length: int = _ARP_FRAME_LEN) -> list[ebpf.Item]:
        # r2 = data, r3 = data_end; the whole frame must be there. Any
        # helper call invalidates packet pointers: this is repeated after one.
        return [insn(LDX_W, R2, R6, ebpf.SKB_DATA), insn(LDX_W, R3, R6, ebpf.SKB_DATA_END), insn(MOV64_X, R4, R2),
                insn(ADD64_K, R4, imm=length), jump(JGT_X, R4, "next", src=R3)]  # fmt: skip

    def from_one_of_our_macs() -> list[ebpf.Item]:
        # (r2 = data.) A frame of ours looped back, or from another of our interfaces: the responder ignores it.
        return [insn(LDX_W, R4, R2, 6), insn(STX_W, R10, R4, -24),
                insn(LDX_H, R4, R2, 10), insn(STX_H, R10, R4, -20), insn(ST_H, R10, 0, -18, 0),
                MapFd(R1, "ours"), insn(MOV64_X, R2, R10), insn(ADD64_K, R2, imm=-24),
                insn(CALL, imm=ebpf.FUNC_MAP_LOOKUP_ELEM),
                jump(JNE_K, R0, "next")]  # fmt: skip

    def lease_lapsed() -> list[ebpf.Item]:
        # r9 = its expiry; past it, the responder (as stuck as whoever stopped renewing) decides.
        return [insn(ST_W, R10, 0, -12, 0),
                MapFd(R1, "lease"), insn(MOV64_X, R2, R10), insn(ADD64_K, R2, imm=-12),
                insn(CALL, imm=ebpf.FUNC_MAP_LOOKUP_ELEM),
                jump(JEQ_K, R0, "next"),
                insn(LDX_DW, R9, R0, 0),
                insn(CALL, imm=ebpf.FUNC_KTIME_GET_NS),
                jump(JGT_X, R0, "next", src=R9)]  # fmt: skip

    def icmpv6_sum(into: int) -> list[ebpf.Item]:
        # The one's complement sum of the pseudo-header and the 32-byte
        # message (addresses at 22, message at 54), folded to 16 bits, in
        # `into`; 0xffff when the checksum in the frame is right. Sums of
        # little-endian loads fold to the byte-swapped sum, which a
        # little-endian store puts back in network order (RFC 1071 2(B)).
        fold = [insn(MOV64_X, R4, into), insn(RSH64_K, R4, imm=16), insn(AND64_K, into, imm=0xFFFF),
                insn(ADD64_X, into, R4)]  # fmt: skip
        return [*packet_bounds(_NS_FRAME_LEN),
                insn(MOV64_X, R3, R2), insn(ADD64_K, R3, imm=22), insn(MOV64_K, R1, imm=0), insn(MOV64_K, R2, imm=0),
                insn(MOV64_K, R4, imm=32), insn(MOV64_K, R5, imm=0), insn(CALL, imm=ebpf.FUNC_CSUM_DIFF),
                insn(MOV64_X, into, R0),
                *packet_bounds(_NS_FRAME_LEN),
                insn(MOV64_X, R3, R2), insn(ADD64_K, R3, imm=54), insn(MOV64_K, R1, imm=0), insn(MOV64_K, R2, imm=0),
                insn(MOV64_K, R4, imm=32), insn(MOV64_X, R5, into), insn(CALL, imm=ebpf.FUNC_CSUM_DIFF),
                insn(MOV32_X, into, R0), insn(ADD64_K, into, imm=_NDP_PSEUDO_WORDS),
                insn(MOV64_X, R4, into), insn(RSH64_K, R4, imm=32), insn(MOV32_X, into, into), insn(ADD64_X, into, R4),
                *fold, *fold, *fold, *fold]  # fmt: skip

    arp = [
        *packet_bounds(),
        insn(LDX_H, R4, R2, 12), jump(JNE32_K, R4, "next", imm=_u32le(b"\x08\x06")),
        # Ethernet (1), IPv4 (0x0800), lengths 6 and 4, request (1).
        insn(LDX_W, R4, R2, 14), jump(JNE32_K, R4, "next", imm=_u32le(b"\x00\x01\x08\x00")),
        insn(LDX_H, R4, R2, 18), jump(JNE32_K, R4, "next", imm=_u32le(b"\x06\x04")),
        insn(LDX_H, R4, R2, 20), jump(JNE32_K, R4, "next", imm=_u32le(b"\x00\x01")),
        insn(LDX_W, R7, R2, 28),  # r7 = sender IP
        insn(LDX_W, R8, R2, 38),  # r8 = target IP
        jump(JEQ_X, R7, "next", src=R8),  # gratuitous
        *from_one_of_our_macs(),
        *lease_lapsed(),
        insn(LDX_W, R9, R6, ebpf.SKB_IFINDEX),  # r9 = this interface
        insn(STX_W, R10, R7, -8), insn(STX_W, R10, R9, -4),
        *lookup_key_at_r10_minus_8(),
        jump(JNE_K, R0, "next"),  # the sender claims an IP we hold or watch: the responder reports it
        insn(STX_W, R10, R8, -8),
        *lookup_key_at_r10_minus_8(),
        jump(JEQ_K, R0, "next"),  # not ours here
        insn(LDX_B, R1, R0, 22), jump(JEQ_K, R1, "next"),  # watched, never answered
        *packet_bounds(),
        insn(MOV64_K, R1, imm=1), insn(ATOMIC_ADD_DW, R0, R1, 0),  # requests += 1
        # The reply: to the sender's MAC (from the ARP body, as the responder
        # does), from ours; sender = our MAC and the asked-for IP, target =
        # the asker. Opcode 2.
        insn(LDX_W, R4, R2, 22), insn(LDX_H, R5, R2, 26),
        insn(STX_W, R2, R4, 0), insn(STX_H, R2, R5, 4),
        insn(STX_W, R2, R4, 32), insn(STX_H, R2, R5, 36),
        insn(LDX_W, R4, R0, 16), insn(LDX_H, R5, R0, 20),
        insn(STX_W, R2, R4, 6), insn(STX_H, R2, R5, 10),
        insn(STX_W, R2, R4, 22), insn(STX_H, R2, R5, 26),
        insn(STX_W, R2, R8, 28), insn(STX_W, R2, R7, 38),
        insn(ST_H, R2, 0, 20, _u32le(b"\x00\x02")),
        insn(MOV64_K, R1, imm=1), insn(ATOMIC_ADD_DW, R0, R1, 8),  # responses += 1
        insn(MOV64_X, R1, R9), insn(MOV64_K, R2, imm=0),  # out of the interface it came in on
        insn(CALL, imm=ebpf.FUNC_REDIRECT),
        insn(EXIT),
    ]  # fmt: skip

    # A Neighbor Solicitation (see _NS_FRAME_LEN): `frames.parse_ndp`'s
    # checks, then `frames.na_reply` written over it.
    ndp = [
        Label("ndp"),
        insn(LDX_W, R4, R6, ebpf.SKB_LEN), jump(JNE_K, R4, "next", imm=_NS_FRAME_LEN),
        *packet_bounds(_NS_FRAME_LEN),
        insn(LDX_H, R4, R2, 12), jump(JNE32_K, R4, "next", imm=_u32le(b"\x86\xdd")),
        insn(LDX_B, R4, R2, 14), insn(AND64_K, R4, imm=0xF0), jump(JNE_K, R4, "next", imm=0x60),  # version 6
        # Payload length 32, next header ICMPv6, hop limit 255.
        insn(LDX_W, R4, R2, 18), jump(JNE32_K, R4, "next", imm=_u32le(b"\x00\x20\x3a\xff")),
        insn(LDX_H, R4, R2, 54), jump(JNE32_K, R4, "next", imm=_u32le(b"\x87\x00")),  # solicitation, code 0
        insn(LDX_H, R4, R2, 78), jump(JNE32_K, R4, "next", imm=_u32le(b"\x01\x01")),  # one source LL option
        # From :: (duplicate address detection: answered to all-nodes): the responder's.
        insn(LDX_W, R4, R2, 22), insn(LDX_W, R5, R2, 26), insn(OR64_X, R4, R5), insn(LDX_W, R5, R2, 30),
        insn(OR64_X, R4, R5), insn(LDX_W, R5, R2, 34), insn(OR64_X, R4, R5), jump(JEQ_K, R4, "next"),
        *icmpv6_sum(R7), jump(JNE_K, R7, "next", imm=0xFFFF),
        *packet_bounds(_NS_FRAME_LEN),
        *from_one_of_our_macs(),
        *lease_lapsed(),
        insn(LDX_W, R9, R6, ebpf.SKB_IFINDEX),  # r9 = this interface
        *packet_bounds(_NS_FRAME_LEN),
        *[item for off in (0, 4, 8, 12) for item in (insn(LDX_W, R4, R2, 62 + off), insn(STX_W, R10, R4, -48 + off))],
        insn(STX_W, R10, R9, -32),
        MapFd(R1, "owned6"), insn(MOV64_X, R2, R10), insn(ADD64_K, R2, imm=-48),
        insn(CALL, imm=ebpf.FUNC_MAP_LOOKUP_ELEM),
        jump(JEQ_K, R0, "next"),  # not ours here
        insn(LDX_B, R1, R0, 22), jump(JEQ_K, R1, "next"),  # watched, never answered
        insn(MOV64_X, R7, R0),  # r7 = the entry
        insn(MOV64_K, R1, imm=1), insn(ATOMIC_ADD_DW, R7, R1, 0),  # requests += 1
        *packet_bounds(_NS_FRAME_LEN),
        # The Advertisement: to the source link-layer address, from our MAC;
        # from the target to the asker; Solicited and Override; our MAC as
        # the target link-layer address.
        insn(LDX_W, R4, R2, 80), insn(LDX_H, R5, R2, 84), insn(STX_W, R2, R4, 0), insn(STX_H, R2, R5, 4),
        insn(LDX_W, R4, R7, 16), insn(LDX_H, R5, R7, 20),
        insn(STX_W, R2, R4, 6), insn(STX_H, R2, R5, 10), insn(STX_W, R2, R4, 80), insn(STX_H, R2, R5, 84),
        insn(ST_W, R2, 0, 14, _u32le(b"\x60\x00\x00\x00")),
        *[item for off in (0, 4, 8, 12) for item in (insn(LDX_W, R4, R2, 22 + off), insn(STX_W, R2, R4, 38 + off))],
        *[item for off in (0, 4, 8, 12) for item in (insn(LDX_W, R4, R2, 62 + off), insn(STX_W, R2, R4, 22 + off))],
        insn(ST_H, R2, 0, 54, _u32le(b"\x88\x00")), insn(ST_H, R2, 0, 56, 0),
        insn(ST_W, R2, 0, 58, _u32le(b"\x60\x00\x00\x00")), insn(ST_H, R2, 0, 78, _u32le(b"\x02\x01")),
        insn(MOV64_K, R1, imm=1), insn(ATOMIC_ADD_DW, R7, R1, 8),  # responses += 1
        *icmpv6_sum(R8), insn(XOR64_K, R8, imm=0xFFFF),
        *packet_bounds(_NS_FRAME_LEN),
        insn(STX_H, R2, R8, 56),
        insn(MOV64_X, R1, R9), insn(MOV64_K, R2, imm=0),  # out of the interface it came in on
        insn(CALL, imm=ebpf.FUNC_REDIRECT),
        insn(EXIT),
    ]  # fmt: skip

    return [
        insn(MOV64_X, R6, R1),  # r6 = the skb, kept across calls
        # Every frame the interface receives runs this: the cheapest tests first.
        insn(LDX_W, R4, R6, ebpf.SKB_PROTOCOL), jump(JEQ32_K, R4, "l2", imm=_ETH_P_ARP_BE),
        jump(JNE32_K, R4, "next", imm=_ETH_P_IPV6_BE),
        Label("l2"),
        # A tag the NIC stripped: the request came on a VLAN, not this interface.
        insn(LDX_W, R5, R6, ebpf.SKB_VLAN_PRESENT), jump(JNE_K, R5, "next"),
        # Unicast to another host's MAC (seen in promiscuous mode): not ours to answer.
        insn(LDX_W, R5, R6, ebpf.SKB_PKT_TYPE), jump(JEQ_K, R5, "next", imm=_PACKET_OTHERHOST),
        jump(JEQ32_K, R4, "ndp", imm=_ETH_P_IPV6_BE),
        *arp,
        *ndp,
        Label("next"),
        insn(MOV64_K, R0, imm=ebpf.TCX_NEXT),
        insn(EXIT),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Entry:
    mac: bytes
    answer: bool


class KernelArp:
    """The program, its maps and a link per interface; kept equal to the responder's ARP and NDP answers.

    Control side only (the announcer's thread): not thread-safe, and needs
    no lock against the responder thread, which never touches it.
    """

    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        """Raises `ebpf.Unavailable` with the reason when this host cannot run it."""
        maps: list[ebpf.Map] = []
        try:
            maps.append(ebpf.Map("metalloid_arp", KEY.size, VALUE.size, max_entries))
            maps.append(ebpf.Map("metalloid_ndp", KEY6.size, VALUE.size, max_entries))
            maps.append(ebpf.Map("metalloid_ours", _MAC_KEY_SIZE, 1, MAX_MACS))
            maps.append(ebpf.Map("metalloid_lease", 4, 8, 1, kind=ebpf.MAP_TYPE_ARRAY))
            self._map, self._map6, self._ours, self._lease = maps
            code = ebpf.assemble(program(), {"owned": self._map.fd, "owned6": self._map6.fd, "ours": self._ours.fd,
                                             "lease": self._lease.fd})  # fmt: skip
            self._program = ebpf.Program("metalloid_arp", code)
        except BaseException:
            for made in maps:
                made.close()
            raise
        self._links: dict[str, ebpf.Link] = {}
        self._macs: dict[str, bytes] = {}
        self._entries: dict[bytes, _Entry] = {}
        # What the last `sync` was given: packed IP -> (interfaces, answered), and the ports then.
        self._ips: dict[bytes, tuple[frozenset[str], bool]] = {}
        self._ports: dict[str, tuple[int, bytes]] = {}
        self._our_macs: frozenset[bytes] = frozenset()
        self._seen: dict[bytes, bytes] = {}  # key -> the counters last folded (raw)
        # Wanted entries the full map refused: placed as soon as removals make room.
        self._unplaced: dict[bytes, _Entry] = {}
        self._next_counts = 0.0
        self._full_logged = False
        # Per packed IP, everything the program counted for it (written here only).
        self.requests: dict[bytes, int] = {}
        self.responses: dict[bytes, int] = {}

    @property
    def interfaces(self) -> list[str]:
        return sorted(self._links)

    @property
    def entries(self) -> int:
        return len(self._entries)

    def test_run(self, frame: bytes, *, ifindex: int = 0) -> tuple[int, bytes]:
        return self._program.test_run(frame, ifindex=ifindex)

    def attach(self, name: str, index: int, mac: bytes) -> None:
        """Answer on `name` from now on (replacing an older link, as after the interface was recreated)."""
        self.detach(name)
        self._links[name] = self._program.attach_ingress(index)
        self._macs[name] = mac

    def detach(self, name: str) -> None:
        link = self._links.pop(name, None)
        self._macs.pop(name, None)
        if link is not None:
            link.close()

    def sync(self, owned4: Mapping[bytes, Iterable[str]], watched4: Mapping[bytes, Iterable[str]],
             indexes: Mapping[str, int], ours: Collection[bytes], *,
             owned6: Mapping[bytes, Iterable[str]] | None = None,
             watched6: Mapping[bytes, Iterable[str]] | None = None) -> None:  # fmt: skip
        """Make the maps hold exactly `owned4`/`owned6` (answered) and `watched4`/`watched6` (not), where attached.

        `ours`: the MACs of every interface the responder has open; a request
        from any of them is left to it (it ignores them).

        Removals go first: when this returns, nothing withdrawn is answered.
        Called on every change of the owned set (once per IP withdrawn at a
        shutdown), so only what changed since the last call is worked out
        entry by entry.
        """
        self._sync_macs(frozenset(ours))
        ports = {name: (indexes[name], self._macs[name]) for name in self._links if name in indexes}
        wanted_ips: dict[bytes, tuple[frozenset[str], bool]] = {ip: (frozenset(names), False)
                                                               for ip, names in watched4.items()}  # fmt: skip
        wanted_ips.update((ip, (frozenset(names), False)) for ip, names in (watched6 or {}).items())
        wanted_ips.update((ip, (frozenset(names), True)) for ip, names in owned4.items())
        wanted_ips.update((ip, (frozenset(names), True)) for ip, names in (owned6 or {}).items())
        if ports != self._ports:
            changed = set(wanted_ips) | set(self._ips)
        else:
            previous = self._ips
            changed = {ip for ip, want in wanted_ips.items() if previous.get(ip) != want}
            changed.update(ip for ip in previous if ip not in wanted_ips)
        self._ports, self._ips = ports, wanted_ips
        if not changed:
            return
        wanted: dict[bytes, _Entry] = {}
        for ip in changed:
            names, answer = wanted_ips.get(ip, (frozenset(), False))
            for name in names:
                if name in ports:
                    index, mac = ports[name]
                    wanted[ip + _INDEX.pack(index)] = _Entry(mac, answer)
        stale = [key for key in self._entries if key[:-4] in changed and key not in wanted]
        for key in stale:
            self._fold(key, self._map_of(key).lookup(key))
            self._map_of(key).delete(key)
            del self._entries[key]
            self._seen.pop(key, None)
        for key in [key for key in self._unplaced if key[:-4] in changed and key not in wanted]:
            del self._unplaced[key]
        for key, entry in wanted.items():
            if self._entries.get(key) != entry:
                self._place(key, entry)
        if stale and self._unplaced:
            # The removals made room: what a full map refused earlier goes in now.
            for key, entry in list(self._unplaced.items()):
                if not self._place(key, entry):
                    break

    def _map_of(self, key: bytes) -> ebpf.Map:
        return self._map if len(key) == KEY.size else self._map6

    def _place(self, key: bytes, entry: _Entry) -> bool:
        """Put one entry in the map; False (and kept in `_unplaced`) when the map is full."""
        # A changed entry keeps its counts; the map holds exactly `_entries`, so a new key needs no lookup.
        current = self._map_of(key).lookup(key) if key in self._entries else None
        requests, responses = VALUE.unpack(current)[:2] if current else (0, 0)
        try:
            self._map_of(key).update(key, VALUE.pack(requests, responses, entry.mac, entry.answer))
        except OSError as exc:
            if not self._full_logged:
                log.warning("layer2.kernel_arp.map_full entries=%d error=%s (the responder answers the rest)",
                            len(self._entries), exc)  # fmt: skip
                self._full_logged = True
            self._unplaced[key] = entry
            return False
        self._entries[key] = entry
        self._unplaced.pop(key, None)
        return True

    def _sync_macs(self, ours: frozenset[bytes]) -> None:
        for mac in self._our_macs - ours:
            self._ours.delete(mac.ljust(_MAC_KEY_SIZE, b"\0"))
        for mac in ours - self._our_macs:
            self._ours.update(mac.ljust(_MAC_KEY_SIZE, b"\0"), b"\1")
        self._our_macs = ours

    def renew(self, *, seconds: float = LEASE_SECONDS) -> None:
        """Let the program answer for `seconds` more (see LEASE_SECONDS)."""
        self._lease.update(_LEASE_KEY, struct.pack("<Q", time.monotonic_ns() + int(seconds * 1e9)))

    def refresh_counts(self, now: float, *, force: bool = False) -> None:
        """Fold what the program counted since the last call into `requests` / `responses`."""
        if not force and now < self._next_counts:
            return
        self._next_counts = now + COUNTS_SECONDS
        seen = self._seen
        for key, raw in itertools.chain(self._map.items(), self._map6.items()):
            counters = raw[:16]
            if seen.get(key) != counters:
                self._fold(key, raw)

    def _fold(self, key: bytes, raw: bytes | None) -> None:
        if raw is None:
            return
        counters = raw[:16]
        before = self._seen.get(key, bytes(16))
        ip = key[:-4]
        now_req, now_resp = struct.unpack_from("<QQ", counters)
        was_req, was_resp = struct.unpack_from("<QQ", before)
        if now_req > was_req:
            self.requests[ip] = self.requests.get(ip, 0) + now_req - was_req
        if now_resp > was_resp:
            self.responses[ip] = self.responses.get(ip, 0) + now_resp - was_resp
        self._seen[key] = counters

    def close(self) -> None:
        """Detach everywhere and free the program and the map."""
        for name in list(self._links):
            self.detach(name)
        self._program.close()
        self._map.close()
        self._map6.close()
        self._ours.close()
        self._lease.close()
        self._entries.clear()
        self._seen.clear()
        self._unplaced.clear()


def for_responder(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`Responder`'s arguments: a KernelArp, or None and why ARP is answered from user space only.

    METALLOID_LAYER2_KERNEL_ARP=off keeps every answer in user space (to
    compare, or on a kernel whose tcx misbehaves).
    """
    value = (os.environ if environ is None else environ).get(ENV, "on").strip().lower()
    if value in ("off", "0", "false", "no"):
        return {"kernel": None, "kernel_unavailable": f"turned off ({ENV}={value})"}
    try:
        return {"kernel": KernelArp(), "kernel_unavailable": ""}
    except ebpf.Unavailable as exc:
        return {"kernel": None, "kernel_unavailable": str(exc)}
