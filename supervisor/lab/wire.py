"""When a lab host sends its next heartbeat (or VRRP advertisement): watched on its own interface.

A failure's detection time is "the deadline minus how long before the
failure the last heartbeat went out", so a bench that compares two daemons
must fail both at the same points of their heartbeat cycles. Failing at a
random moment adds a spread of a whole interval to each trial, and the
median of 20-40 trials then moves by ~10 ms from run to run: more than the
difference being measured at a 0.1 s interval (BENCHMARKS.md, failover).

`next_sent` opens a packet socket on `eth0` inside the host's namespace (a
thread of its own enters it: the bench stays where it is) and returns the
monotonic time at which the host next sent an IPv4 packet that `match`
accepts. A socket only sees packets from its creation on, so nothing queued
from before counts. `Cable` cuts a host's cable at the moment asked for.

    sent = next_sent(lab, "n1", udp_to(7946), timeout=1.0)
"""

from __future__ import annotations

import fcntl
import socket
import struct
import time
from collections.abc import Callable

from supervisor.lab.netns import Lab, NamespaceThread

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
VRRP_PROTOCOL = 112
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

Match = Callable[[bytes], bool]


def udp_to(port: int) -> Match:
    """IPv4 UDP datagrams to `port` (metalloid's heartbeats: the membership port)."""

    def match(packet: bytes) -> bool:
        head = (packet[0] & 0x0F) * 4
        return packet[9] == socket.IPPROTO_UDP and struct.unpack_from("!H", packet, head + 2)[0] == port

    return match


def ip_protocol(number: int) -> Match:
    """IPv4 packets of one protocol (VRRP's advertisements: 112)."""
    return lambda packet: packet[9] == number


def _socket_in(netns: str, make: Callable[[], socket.socket]) -> socket.socket:
    """`make()` run inside `netns`: the socket stays in that namespace, this process does not move."""
    thread = NamespaceThread(netns)
    try:
        return thread.run(make)
    finally:
        thread.stop()


def _packet_socket(device: str) -> socket.socket:
    # ETH_P_ALL: a socket bound to one protocol is not shown what the host sends.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    sock.bind((device, ETH_P_ALL))
    return sock


def next_sent(lab: Lab, host: str, match: Match, timeout: float, device: str = "eth0") -> float | None:
    """The monotonic time `host` next sent a packet `match` accepts on `device`; None after `timeout`."""
    sock = _socket_in(lab.host(host).netns, lambda: _packet_socket(device))
    try:
        until = time.monotonic() + timeout
        while (left := until - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                packet, address = sock.recvfrom(2048)
            except TimeoutError:
                return None
            seen = time.monotonic()
            # (SOCK_DGRAM: the packet without its link header; the address says its protocol and type.)
            if address[1] == ETH_P_IP and address[2] == PACKET_OUTGOING and len(packet) >= 28 and match(packet):
                return seen
        return None
    finally:
        sock.close()


class Cable:
    """Cuts and restores hosts' cables from this process, in microseconds.

    `Lab.link` starts `ip` (a few ms, varying), so a failure meant for a point
    of the heartbeat cycle happened a little later, and near the end of the
    cycle after the next heartbeat: one trial in 20 of a run measured a whole
    interval more than it should. This flips the bridge port's IFF_UP with an
    ioctl on a socket opened in the bridge's namespace.
    """

    def __init__(self, lab: Lab) -> None:
        self._lab = lab
        self._sock = _socket_in(lab.bridge_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    def set(self, host: str, *, up: bool) -> None:
        name = self._lab.bridge_port(host).encode()
        request = struct.pack("16sH", name, 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(self._sock, SIOCGIFFLAGS, request))[1]
        flags = flags | IFF_UP if up else flags & ~IFF_UP
        fcntl.ioctl(self._sock, SIOCSIFFLAGS, struct.pack("16sH", name, flags))

    def close(self) -> None:
        self._sock.close()
