"""A paced UDP flood of one datagram, for the lab: `python -m supervisor.lab.flood ...` inside a namespace.

Sends `--rate` datagrams a second for `--seconds`, 64 per sendmmsg(2) call
(supervisor.batchio's structures: the socket module has no sendmmsg), so the flooder, not Python, is
rarely what limits the rate. From a UDP socket (the source is this host's
address), or with `--spoof-source` from a packet socket with IPv4/UDP headers
built here (an attacker on the LAN can do the same, no privilege on the
target needed). Prints `{"sent": N, "seconds": S}`. `flood()` is also bench/arp.py's
ARP flooder; used by bench/membership_flood.py and tests/test_cluster_lab.py.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import socket
import struct
import time

from supervisor.batchio import IOVec, MMsgHdr, libc

BATCH = 64


def ipv4_udp_frame(payload: bytes, *, src: str, dst: str, port: int, src_mac: bytes, dst_mac: bytes) -> bytes:
    """An Ethernet frame carrying `payload` in UDP from src:port to dst:port (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    words = sum(struct.unpack("!10H", ip))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    ip = ip[:10] + struct.pack("!H", ~words & 0xFFFF) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def flood(sock: socket.socket, packet: bytes, rate: int, seconds: float) -> tuple[int, float]:
    """Send `packet` `rate` times a second for `seconds`; (sent, elapsed)."""
    buf = ctypes.create_string_buffer(packet, len(packet))
    iov = IOVec(ctypes.cast(buf, ctypes.c_void_p), len(packet))
    # One payload for every message: no copy per datagram (batchio.Sender copies each).
    msgs = (MMsgHdr * BATCH)()
    for m in msgs:
        m.hdr.iov = ctypes.pointer(iov)
        m.hdr.iovlen = 1
    fd = sock.fileno()
    sent, total = 0, int(rate * seconds)
    start = time.perf_counter()
    while sent < total:
        n = libc().sendmmsg(fd, ctypes.addressof(msgs), min(BATCH, total - sent), 0)
        if n > 0:
            sent += n
        ahead = start + sent / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    return sent, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, help="IPv4:port")
    parser.add_argument("--payload", required=True, help="the datagram, hex")
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--spoof-source", help="IPv4 source address to forge (packet socket on eth0)")
    parser.add_argument("--target-mac", help="with --spoof-source: the target's MAC (aa:bb:...)")
    args = parser.parse_args()
    host, _, port_text = args.target.rpartition(":")
    port, payload = int(port_text), bytes.fromhex(args.payload)
    if args.spoof_source:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.bind(("eth0", 0))
        packet = ipv4_udp_frame(payload, src=args.spoof_source, dst=host, port=port, src_mac=sock.getsockname()[4],
                                dst_mac=bytes.fromhex(args.target_mac.replace(":", "")))  # fmt: skip
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((host, port))
        packet = payload
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sent, seconds = flood(sock, packet, args.rate, args.seconds)
    print(json.dumps({"sent": sent, "seconds": seconds}))


if __name__ == "__main__":
    main()
