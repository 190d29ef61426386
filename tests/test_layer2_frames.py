"""ARP/NDP frames: built frames dissect correctly in scapy, scapy's frames parse, garbage never raises."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether

from plugins.layer2 import bpf, frames

OUR_MAC = frames.mac_bytes("02:00:00:00:00:aa")
CLIENT_MAC = frames.mac_bytes("02:00:00:00:00:01")
VIP4 = ipaddress.IPv4Address("10.0.10.10")
CLIENT4 = ipaddress.IPv4Address("10.0.10.1")
VIP6 = ipaddress.IPv6Address("fd00::10")
CLIENT6 = ipaddress.IPv6Address("fd00::1")

macs = st.binary(min_size=6, max_size=6)
ipv4s = st.binary(min_size=4, max_size=4)
ipv6s = st.binary(min_size=16, max_size=16)


def test_arp_reply_dissects_as_a_reply_to_the_request() -> None:
    request = bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc="02:00:00:00:00:01", psrc=str(CLIENT4), pdst=str(VIP4)))  # fmt: skip
    parsed = frames.parse_arp(request)
    assert parsed is not None
    reply = Ether(frames.arp_reply(parsed, OUR_MAC))
    assert reply.dst == "02:00:00:00:00:01" and reply.src == "02:00:00:00:00:aa"
    assert reply[ARP].op == 2
    assert (reply[ARP].hwsrc, reply[ARP].psrc) == ("02:00:00:00:00:aa", str(VIP4))
    assert (reply[ARP].hwdst, reply[ARP].pdst) == ("02:00:00:00:00:01", str(CLIENT4))


@pytest.mark.parametrize("form", [0, 1], ids=["request-form", "reply-form"])
def test_gratuitous_arp_forms_are_what_linux_accepts(form: int) -> None:
    packet = Ether(frames.gratuitous_arp(OUR_MAC, VIP4.packed)[form])
    assert packet.dst == "ff:ff:ff:ff:ff:ff"
    assert packet[ARP].psrc == packet[ARP].pdst == str(VIP4)
    assert packet[ARP].hwsrc == "02:00:00:00:00:aa"
    if form == 0:
        assert packet[ARP].op == 1
    else:
        # arp_is_garp(): a reply is gratuitous only when tha == sha.
        assert packet[ARP].op == 2 and packet[ARP].hwdst == "02:00:00:00:00:aa"


def test_neighbor_solicitation_from_scapy_parses() -> None:
    target = str(VIP6)
    group = frames.solicited_node(VIP6.packed)
    ns = Ether(src="02:00:00:00:00:01", dst=frames.mac_text(frames.multicast_mac(group))) / IPv6(
        src=str(CLIENT6), dst=str(ipaddress.IPv6Address(group)), hlim=255
    ) / ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    parsed = frames.parse_ndp(bytes(ns))
    assert parsed is not None
    assert (parsed.type, parsed.target, parsed.link_addr) == (frames.NDP_NS, VIP6.packed, CLIENT_MAC)
    assert str(ipaddress.IPv6Address(group)) == "ff02::1:ff00:10"


def test_na_reply_dissects_with_valid_checksum_and_flags() -> None:
    ns = frames.parse_ndp(frames.build_ns(eth_src=CLIENT_MAC, src_ip=CLIENT6.packed, target=VIP6.packed))
    assert ns is not None
    raw = frames.na_reply(ns, OUR_MAC)
    packet = Ether(raw)
    na = packet[ICMPv6ND_NA]
    assert packet.dst == "02:00:00:00:00:01" and packet[IPv6].dst == str(CLIENT6) and packet[IPv6].hlim == 255
    assert (na.S, na.O, na.R, na.tgt) == (1, 1, 0, str(VIP6))
    assert packet[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:aa"
    # scapy recomputes the checksum when rebuilt: ours must be the same.
    expected = IPv6(bytes(packet[IPv6]))
    del expected[ICMPv6ND_NA].cksum
    assert Ether(bytes(Ether(raw[:14]) / expected))[ICMPv6ND_NA].cksum == na.cksum


def test_dad_solicitation_is_answered_to_all_nodes_without_solicited() -> None:
    ns = frames.parse_ndp(frames.build_ns(eth_src=CLIENT_MAC, src_ip=bytes(16), target=VIP6.packed))
    assert ns is not None
    packet = Ether(frames.na_reply(ns, OUR_MAC))
    assert packet[IPv6].dst == "ff02::1" and packet.dst == "33:33:00:00:00:01"
    assert (packet[ICMPv6ND_NA].S, packet[ICMPv6ND_NA].O) == (0, 1)


def test_unsolicited_na_has_override_and_goes_to_all_nodes() -> None:
    packet = Ether(frames.unsolicited_na(OUR_MAC, VIP6.packed))
    assert packet[IPv6].dst == "ff02::1" and packet[ICMPv6ND_NA].O == 1 and packet[ICMPv6ND_NA].S == 0
    assert frames.parse_ndp(bytes(packet)) is not None


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b[:41], id="truncated"),
        pytest.param(lambda b: b[:12] + b"\x08\x00" + b[14:], id="ipv4-ethertype"),
        pytest.param(lambda b: b[:14] + b"\x00\x06" + b[16:], id="ieee802-hardware"),
        pytest.param(lambda b: b[:18] + b"\x06\x10" + b[20:], id="ipv6-protocol-length"),
        pytest.param(lambda b: b[:20] + b"\x00\x03" + b[22:], id="rarp-opcode"),
    ],
)
def test_malformed_arp_is_rejected_by_parser_and_filter(mutate: object) -> None:
    good = frames.gratuitous_arp(OUR_MAC, VIP4.packed)[0]
    bad = mutate(good)  # type: ignore[operator]
    assert frames.parse_arp(good) is not None and bpf.run(bpf.ARP_FILTER, good)
    assert frames.parse_arp(bad) is None
    assert bpf.run(bpf.ARP_FILTER, bad) == 0 or len(bad) < frames.ARP_FRAME_LEN


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        pytest.param(21, 64, id="hop-limit-not-255"),
        pytest.param(60, 0xFF, id="bad-checksum"),
        pytest.param(79, 0, id="zero-length-option"),
        pytest.param(55, 1, id="nonzero-code"),
    ],
)
def test_malformed_ndp_is_rejected(offset: int, value: int) -> None:
    good = bytearray(frames.build_ns(eth_src=CLIENT_MAC, src_ip=CLIENT6.packed, target=VIP6.packed))
    assert frames.parse_ndp(bytes(good)) is not None
    good[offset] = value if good[offset] != value else value ^ 1
    assert frames.parse_ndp(bytes(good)) is None


@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_parsers(data: bytes) -> None:
    frames.parse_arp(data)
    frames.parse_ndp(data)


@given(st.binary(min_size=14, max_size=120), st.sampled_from([b"\x08\x06", b"\x86\xdd"]))
def test_random_frames_of_our_ethertypes_never_crash(body: bytes, ethertype: bytes) -> None:
    data = body[:12] + ethertype + body[14:]
    frames.parse_arp(data)
    frames.parse_ndp(data)


@given(st.sampled_from([1, 2]), macs, macs, macs, ipv4s, macs, ipv4s)
def test_built_arp_parses_back_to_itself(op: int, src: bytes, dst: bytes, sha: bytes, spa: bytes, tha: bytes,
                                         tpa: bytes) -> None:  # fmt: skip
    raw = frames.build_arp(
        op=op, eth_src=src, eth_dst=dst, sender_mac=sha, sender_ip=spa, target_mac=tha, target_ip=tpa
    )
    assert frames.parse_arp(raw) == frames.ArpPacket(
        eth_src=src, eth_dst=dst, op=op, sender_mac=sha, sender_ip=spa, target_mac=tha, target_ip=tpa
    )
    assert bpf.run(bpf.ARP_FILTER, raw) > 0


@given(macs, macs, ipv6s, ipv6s, ipv6s, st.sampled_from([0, 0x20, 0x40, 0x60, 0xE0]))
def test_built_na_parses_back_to_itself(src: bytes, dst: bytes, sip: bytes, dip: bytes, target: bytes,
                                        flags: int) -> None:  # fmt: skip
    raw = frames.build_na(eth_src=src, eth_dst=dst, src_ip=sip, dst_ip=dip, target=target, flags=flags)
    assert frames.parse_ndp(raw) == frames.NdpPacket(
        eth_src=src, eth_dst=dst, src_ip=sip, dst_ip=dip, type=frames.NDP_NA, flags=flags, target=target, link_addr=src
    )
    assert bpf.run(bpf.NDP_FILTER, raw) > 0


arpish = st.builds(
    lambda head, ethertype, htype, ptype, lens, op, tail: head + ethertype + htype + ptype + lens + op + tail,
    st.binary(min_size=12, max_size=12),
    st.sampled_from([b"\x08\x06", b"\x08\x00", b"\x86\xdd"]),
    st.sampled_from([b"\x00\x01", b"\x00\x06"]),
    st.sampled_from([b"\x08\x00", b"\x86\xdd"]),
    st.sampled_from([b"\x06\x04", b"\x06\x10", b"\x08\x04"]),
    st.sampled_from([b"\x00\x01", b"\x00\x02", b"\x00\x03", b"\x01\x01"]),
    st.binary(max_size=40),
)


@given(st.one_of(st.binary(max_size=100), arpish))
def test_arp_filter_passes_exactly_what_the_parser_accepts(data: bytes) -> None:
    accepted = bpf.run(bpf.ARP_FILTER, data) > 0
    if len(data) >= frames.ARP_FRAME_LEN:
        assert accepted == (frames.parse_arp(data) is not None)
    if accepted:
        assert data[12:14] == b"\x08\x06"


@given(st.binary(min_size=60, max_size=100))
def test_ndp_filter_accepts_everything_the_parser_accepts(data: bytes) -> None:
    if frames.parse_ndp(data) is not None:
        assert bpf.run(bpf.NDP_FILTER, data) > 0
