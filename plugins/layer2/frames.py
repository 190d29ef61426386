"""ARP and NDP frames as bytes: build and parse with `struct`, nothing else.

The responder answers on the hot path (≥100k requests/s in one Python thread),
so parsing is slicing and one `struct.unpack_from` per frame, never a scapy
dissection (100x slower, measured in shared/FACTS.md). Parsers return None for
anything malformed or not the kind asked for: a frame off the wire is
untrusted input and must never raise. The tests cross-check every builder and
parser against scapy.

Addresses are passed packed (`bytes` of 6, 4 or 16) because that is what is on
the wire and what the owned-IP map is keyed by; `mac_text`/`mac_bytes` convert
for logs and configuration.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD

ARP_REQUEST = 1
ARP_REPLY = 2

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

ICMPV6_NEXT_HEADER = 58
NDP_NS = 135
NDP_NA = 136
# RFC 4861 §7.1.1: a node must drop NDP messages whose hop limit is not 255
# (proof they were not routed from off-link).
NDP_HOP_LIMIT = 255
NA_FLAG_SOLICITED = 0x40
NA_FLAG_OVERRIDE = 0x20
OPT_SOURCE_LL = 1
OPT_TARGET_LL = 2

ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"

_ETH = struct.Struct("!6s6sH")
# hardware type, protocol type, hw len, proto len, op, sha, spa, tha, tpa
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ARP_ETHER_IPV4 = (1, ETH_P_IP, 6, 4)
# Ethernet + ARP for IPv4: the minimum a frame must hold to be an ARP packet.
ARP_FRAME_LEN = _ETH.size + _ARP.size
_IPV6 = struct.Struct("!IHBB16s16s")
_NDP_HEAD = struct.Struct("!BBHB3x16s")  # type, code, checksum, flags, target
NDP_MIN_LEN = _ETH.size + _IPV6.size + _NDP_HEAD.size


@dataclass(frozen=True, slots=True, kw_only=True)
class ArpPacket:
    """One Ethernet/IPv4 ARP packet (addresses packed)."""

    eth_src: bytes
    eth_dst: bytes
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class NdpPacket:
    """A Neighbor Solicitation or Advertisement (addresses packed)."""

    eth_src: bytes
    eth_dst: bytes
    src_ip: bytes
    dst_ip: bytes
    type: int
    flags: int
    target: bytes
    # The source (NS) or target (NA) link-layer address option, if present.
    link_addr: bytes | None


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"MAC address {text!r} must have six ':'-separated octets")
    return bytes(int(p, 16) for p in parts)


def parse_arp(frame: bytes) -> ArpPacket | None:
    """An Ethernet/IPv4 ARP packet, or None for anything else or anything malformed."""
    if len(frame) < ARP_FRAME_LEN:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame, 0)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH.size)
    if (htype, ptype, hlen, plen) != _ARP_ETHER_IPV4 or op not in (ARP_REQUEST, ARP_REPLY):
        return None
    return ArpPacket(
        eth_src=src, eth_dst=dst, op=op, sender_mac=sha, sender_ip=spa, target_mac=tha, target_ip=tpa
    )


def build_arp(
    *, op: int, eth_src: bytes, eth_dst: bytes, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes
) -> bytes:
    # The kernel pads to the 60-byte Ethernet minimum; we send 42 bytes.
    return _ETH.pack(eth_dst, eth_src, ETH_P_ARP) + _ARP.pack(
        1, ETH_P_IP, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip
    )


def arp_reply(request: ArpPacket, our_mac: bytes) -> bytes:
    """The unicast reply to `request`: `request.target_ip` is at `our_mac`."""
    return build_arp(
        op=ARP_REPLY,
        eth_src=our_mac,
        eth_dst=request.sender_mac,
        sender_mac=our_mac,
        sender_ip=request.target_ip,
        target_mac=request.sender_mac,
        target_ip=request.sender_ip,
    )


def gratuitous_arp(our_mac: bytes, ip: bytes) -> tuple[bytes, bytes]:
    """Both gratuitous forms, broadcast: the request form, then the reply form.

    Linux accepts the request form (sender IP = target IP) even for an entry
    updated less than `locktime` (1 s) ago; a reply only counts as gratuitous
    when its target MAC equals its sender MAC (net/ipv4/arp.c arp_is_garp), so
    the reply form carries our MAC there, not ff:ff:ff:ff:ff:ff.
    """
    request = build_arp(
        op=ARP_REQUEST, eth_src=our_mac, eth_dst=BROADCAST_MAC,
        sender_mac=our_mac, sender_ip=ip, target_mac=ZERO_MAC, target_ip=ip,
    )  # fmt: skip
    reply = build_arp(
        op=ARP_REPLY, eth_src=our_mac, eth_dst=BROADCAST_MAC,
        sender_mac=our_mac, sender_ip=ip, target_mac=our_mac, target_ip=ip,
    )  # fmt: skip
    return request, reply


def arp_probe(our_mac: bytes, ip: bytes) -> bytes:
    """"Who has `ip`?" from sender IP 0.0.0.0 (RFC 5227's probe): the holder answers, no cache learns from it."""
    return build_arp(
        op=ARP_REQUEST, eth_src=our_mac, eth_dst=BROADCAST_MAC,
        sender_mac=our_mac, sender_ip=bytes(4), target_mac=ZERO_MAC, target_ip=ip,
    )  # fmt: skip


def _checksum_fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def icmpv6_checksum(src: bytes, dst: bytes, payload: bytes) -> int:
    """RFC 4443 §2.3: one's complement sum over the pseudo-header and the message."""
    data = src + dst + struct.pack("!I3xB", len(payload), ICMPV6_NEXT_HEADER) + payload
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    return ~_checksum_fold(total) & 0xFFFF


def parse_ndp(frame: bytes) -> NdpPacket | None:
    """A Neighbor Solicitation or Advertisement, or None (malformed, other, bad checksum)."""
    if len(frame) < NDP_MIN_LEN:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame, 0)
    if ethertype != ETH_P_IPV6:
        return None
    vtcfl, plen, next_header, hop_limit, src_ip, dst_ip = _IPV6.unpack_from(frame, _ETH.size)
    if vtcfl >> 28 != 6 or next_header != ICMPV6_NEXT_HEADER or hop_limit != NDP_HOP_LIMIT:
        return None
    start = _ETH.size + _IPV6.size
    if plen < _NDP_HEAD.size or start + plen > len(frame):
        return None
    payload = frame[start : start + plen]
    kind, code, _, flags, target = _NDP_HEAD.unpack_from(payload, 0)
    if kind not in (NDP_NS, NDP_NA) or code != 0 or icmpv6_checksum(src_ip, dst_ip, payload) != 0:
        return None
    link_addr = _link_layer_option(payload[_NDP_HEAD.size :], OPT_SOURCE_LL if kind == NDP_NS else OPT_TARGET_LL)
    if link_addr is None:
        return None
    return NdpPacket(
        eth_src=src, eth_dst=dst, src_ip=src_ip, dst_ip=dst_ip, type=kind,
        flags=flags if kind == NDP_NA else 0, target=target, link_addr=link_addr or None,
    )  # fmt: skip


def _link_layer_option(options: bytes, wanted: int) -> bytes | None:
    """The 6-byte address of option `wanted`; b"" when absent; None when options are malformed."""
    found = b""
    offset = 0
    while offset + 2 <= len(options):
        kind, length = options[offset], options[offset + 1] * 8
        # RFC 4861 §4.6: a zero-length option is invalid, drop the packet.
        if length == 0 or offset + length > len(options):
            return None
        if kind == wanted and length >= 8:
            found = options[offset + 2 : offset + 8]
        offset += length
    return found


def build_na(
    *, eth_src: bytes, eth_dst: bytes, src_ip: bytes, dst_ip: bytes, target: bytes, flags: int
) -> bytes:
    """A Neighbor Advertisement carrying the target link-layer address option (our MAC)."""
    body = struct.pack("!BBHB3x16s", NDP_NA, 0, 0, flags, target) + bytes((OPT_TARGET_LL, 1)) + eth_src
    checksum = icmpv6_checksum(src_ip, dst_ip, body)
    body = body[:2] + struct.pack("!H", checksum) + body[4:]
    ipv6 = _IPV6.pack(6 << 28, len(body), ICMPV6_NEXT_HEADER, NDP_HOP_LIMIT, src_ip, dst_ip)
    return _ETH.pack(eth_dst, eth_src, ETH_P_IPV6) + ipv6 + body


def build_ns(*, eth_src: bytes, src_ip: bytes, target: bytes) -> bytes:
    """A multicast Neighbor Solicitation (for tests, benchmarks and probes)."""
    dst_ip = solicited_node(target)
    body = struct.pack("!BBHB3x16s", NDP_NS, 0, 0, 0, target) + bytes((OPT_SOURCE_LL, 1)) + eth_src
    checksum = icmpv6_checksum(src_ip, dst_ip, body)
    body = body[:2] + struct.pack("!H", checksum) + body[4:]
    ipv6 = _IPV6.pack(6 << 28, len(body), ICMPV6_NEXT_HEADER, NDP_HOP_LIMIT, src_ip, dst_ip)
    return _ETH.pack(multicast_mac(dst_ip), eth_src, ETH_P_IPV6) + ipv6 + body


def ns_probe(our_mac: bytes, ip: bytes) -> bytes:
    """A duplicate address detection probe for `ip`: from ::, without a source link-layer option (RFC 4862 §5.4.2).

    The holder answers to all-nodes; no neighbour cache learns from the probe.
    """
    dst_ip = solicited_node(ip)
    body = struct.pack("!BBHB3x16s", NDP_NS, 0, 0, 0, ip)
    checksum = icmpv6_checksum(bytes(16), dst_ip, body)
    body = body[:2] + struct.pack("!H", checksum) + body[4:]
    ipv6 = _IPV6.pack(6 << 28, len(body), ICMPV6_NEXT_HEADER, NDP_HOP_LIMIT, bytes(16), dst_ip)
    return _ETH.pack(multicast_mac(dst_ip), our_mac, ETH_P_IPV6) + ipv6 + body


def na_reply(solicitation: NdpPacket, our_mac: bytes) -> bytes:
    """The answer to a Neighbor Solicitation for an address we own (RFC 4861 §7.2.4).

    A solicitation from the unspecified address is duplicate address detection:
    answer to all-nodes without the Solicited flag.
    """
    if solicitation.src_ip == bytes(16):
        return build_na(
            eth_src=our_mac, eth_dst=ALL_NODES_MAC, src_ip=solicitation.target,
            dst_ip=ALL_NODES.packed, target=solicitation.target, flags=NA_FLAG_OVERRIDE,
        )  # fmt: skip
    return build_na(
        eth_src=our_mac, eth_dst=solicitation.link_addr or solicitation.eth_src, src_ip=solicitation.target,
        dst_ip=solicitation.src_ip, target=solicitation.target, flags=NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE,
    )  # fmt: skip


def unsolicited_na(our_mac: bytes, ip: bytes) -> bytes:
    """RFC 4861 §7.2.6: tell every node `ip` moved to `our_mac` (Override set)."""
    return build_na(
        eth_src=our_mac, eth_dst=ALL_NODES_MAC, src_ip=ip, dst_ip=ALL_NODES.packed, target=ip, flags=NA_FLAG_OVERRIDE
    )


def solicited_node(ip: bytes) -> bytes:
    """ff02::1:ffXX:XXXX, the group a Neighbor Solicitation for `ip` is sent to."""
    return bytes.fromhex("ff0200000000000000000001ff") + ip[13:]


def multicast_mac(group: bytes) -> bytes:
    """RFC 2464 §7: 33:33 followed by the group's last four octets."""
    return b"\x33\x33" + group[12:]
