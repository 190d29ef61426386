"""The heartbeat socket: which address this node binds, where each peer listens, send and receive.

One non-blocking UDP socket per node. It binds the node's own InternalIP (or
0.0.0.0 / :: when the config has none for it, or when that address is not on
this host) and sends to each peer's first address of the same family, on the
Settings port unless a per-node port override says otherwise (several nodes
on one host, in tests). Bytes only: encoding, authentication and the failure
detector are the worker's business (codec, detector).

No SO_REUSEADDR / SO_REUSEPORT: with either, another local process (any user,
for REUSEADDR on UDP) could bind the same port and receive our peers'
heartbeats instead of us. A second bind of the port fails with EADDRINUSE.

A kernel socket filter (`sockfilter`) drops, before they are queued,
datagrams from addresses that are no peer's, implausible ones, and those
from a peer proven alive that do not echo our incarnation; the worker says
which peers are strict (`set_strict`), and the filter is re-attached when that,
the peers' addresses or our incarnation change.

Datagrams are read up to 64 per recvmmsg(2) call (`supervisor.batchio`),
each with the time the kernel queued it (`recv`).
The receive buffer is set to RCVBUF_BYTES whatever the host's default, sized
by time: what still passes the filter under a flood (a forger who sees the
heartbeats and echoes our incarnation) queues in front of the real
heartbeats. With batched reads the loop drains faster than such a flood
arrives, so what drops heartbeats is the buffer filling while this process is
not scheduled; 1 MiB (the kernel doubles it: ~2,500 small datagrams, 12 ms of
a 200k/s flood) outlasts a preemption, and draining it takes a few ms, far
under a deadline (see docs/failover.md, "Floods").
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from supervisor import batchio, bpf
from supervisor.config.model import Config
from supervisor.membership import sockfilter
from supervisor.membership.codec import MAX_CHUNK
from supervisor.membership.receiving import BATCH

log = logging.getLogger(__name__)

RECV_SIZE = MAX_CHUNK + 1024
# The kernel doubles it for its bookkeeping: ~830 bytes per small datagram,
# so ~2,500 of them. Set with SO_RCVBUFFORCE where we may (root, CAP_NET_ADMIN:
# a speaker has it), else SO_RCVBUF, which the kernel caps at net.core.rmem_max
# (208 KiB by default: ~500 datagrams). 128 KiB (~300) was 1.6 ms of a 200k/s
# flood: a false death whenever the worker was descheduled longer
# (BENCHMARKS.md, "Membership under a heartbeat-port flood").
RCVBUF_BYTES = 1 << 20
SO_RCVBUFFORCE = 33


class Transport:
    """The node's heartbeat socket and the peers' addresses (rebuilt on every config)."""

    def __init__(
        self, node_name: str, *, ports: tuple[tuple[str, int], ...] = (), bind_address: str | None = None
    ) -> None:
        self.node_name = node_name
        self._ports = dict(ports)
        self._bind_address = bind_address
        self.sock: socket.socket | None = None
        self.bound: tuple[str, int] | None = None
        self.peer_addrs: dict[str, tuple[str, int]] = {}
        # Every configured address of every peer: the only sources we read.
        self.sources: frozenset[str] = frozenset()
        self._owners: dict[str, str] = {}
        self._strict: frozenset[str] = frozenset()
        self._incarnation = 0
        self._program: bpf.Program | None = None
        self._receiver = batchio.Receiver(count=BATCH, size=RECV_SIZE, timestamps=True)
        self._stamped = False  # the socket has the kernel's arrival times (batchio.enable_timestamps)
        self._last_read = time.monotonic()
        self._sender = batchio.Sender(count=BATCH, size=RECV_SIZE)

    def configure(self, config: Config, port: int) -> None:
        """Resolve the peers' addresses and (re)bind when our own address or port changed."""
        own = config.node(self.node_name)
        address = self._bind_address or (str(own.addresses[0]) if own and own.addresses else "0.0.0.0")
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        want = (address, self._ports.get(self.node_name, port))
        self.peer_addrs = {}
        self._owners = {str(a): n.name for n in config.nodes if n.name != self.node_name for a in n.addresses}
        self.sources = frozenset(self._owners)
        for node in config.nodes:
            if node.name == self.node_name:
                continue
            same_family = [a for a in node.addresses if (a.version == 6) == (family == socket.AF_INET6)]
            if same_family:
                self.peer_addrs[node.name] = (str(same_family[0]), self._ports.get(node.name, port))
            else:
                log.warning(
                    "membership.no_address peer=%s note=the Node has no InternalIP of family %s",
                    node.name,
                    "IPv6" if family == socket.AF_INET6 else "IPv4",
                )
        if want != self.bound or self.sock is None:
            self.close()
            self.sock, self.bound = _bind(family, want, self.node_name)
            self._stamped = batchio.enable_timestamps(self.sock)
            self._last_read = time.monotonic()
        self._filter()

    def set_strict(self, peers: frozenset[str], incarnation: int) -> None:
        """Peers whose datagrams must echo `incarnation` to get past the kernel filter."""
        if (peers, incarnation) != (self._strict, self._incarnation):
            self._strict, self._incarnation = peers, incarnation
            self._filter()

    def _filter(self) -> None:
        if self.sock is None:
            return
        peers = [sockfilter.Peer(a, owner in self._strict) for a, owner in self._owners.items()]
        program = sockfilter.build(peers, self._incarnation)
        if program == self._program:
            return
        try:
            bpf.attach(self.sock, program)
        except OSError as exc:
            # Not Linux, or a kernel without socket filters: the Screen still refuses the same datagrams.
            log.warning("membership.no_socket_filter error=%s note=floods fill the receive buffer", exc)
        self._program = program

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped for this socket since it was bound (filtered or buffer full)."""
        if self.sock is None:
            return None
        inode = str(os.fstat(self.sock.fileno()).st_ino)
        table = "/proc/net/udp6" if self.sock.family == socket.AF_INET6 else "/proc/net/udp"
        try:
            with open(table) as lines:
                for line in lines:
                    fields = line.split()
                    # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[12])
        except (OSError, ValueError):
            pass
        return None

    def send_each(self, packet_for: Callable[[str], bytes]) -> None:
        """Send every peer its own datagram (`packet_for(peer)`); a failed send is only logged."""
        if self.sock is None:
            return
        peers = list(self.peer_addrs.items())
        # Up to 64 per sendmmsg(2) call: at 250 peers, 4 system calls an interval instead of 250.
        failed = self._sender.send(self.sock, [(packet_for(peer), addr) for peer, addr in peers])
        for i, exc in failed:
            # A peer's network may be down; its deadline on our side is what counts.
            log.debug("membership.send_failed peer=%s addr=%s error=%s", peers[i][0], peers[i][1], exc)

    def recv(self, limit: int) -> list[tuple[bytes, Any, float]]:
        """Up to `limit` queued datagrams as (data, source address, arrived), one recvmmsg(2) call; [] when none is.

        `arrived` is when the kernel queued the datagram, on the monotonic
        clock: the worker reads in batches (receiving.receive_gap), and a
        heartbeat must count from when it came, not from when we got round
        to it, or the read delay would look like the peer's lateness to the
        adaptive deadline. The kernel stamps the wall clock; it is moved to
        the monotonic one with both clocks read once per call and kept
        between the previous call and now, so a wall-clock step between
        arrival and read can make a datagram look at most as old as the
        previous read (as without the stamps), never older. Without stamps
        (kernels or sockets that refuse them): the time of this read. (The
        kernel turns stamping on asynchronously when the first socket on the
        host asks for it; datagrams that arrive before are stamped when read,
        which is the same.)
        """
        if self.sock is None:
            return []
        since, now = self._last_read, time.monotonic()
        self._last_read = now
        receiver = self._receiver
        if not receiver.receive(self.sock, limit=limit):
            return []
        datagrams = receiver.datagrams()
        if not self._stamped:
            return [(data, source, now) for data, source in datagrams]
        offset = now - time.time()
        return [(data, source, min(now, max(since, wall + offset)) if wall else now)
                for (data, source), wall in zip(datagrams, receiver.arrivals(), strict=True)]  # fmt: skip

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self._program = None


def _bind(family: socket.AddressFamily, want: tuple[str, int], node_name: str) -> tuple[socket.socket, tuple[str, int]]:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    try:
        sock.bind(want)
    except OSError as exc:
        if exc.errno != errno.EADDRNOTAVAIL:
            sock.close()
            raise
        # The Node's InternalIP is not on this host (a copied config, a
        # renumbered host). Heartbeats are authenticated by name and key,
        # not by source address, so listen everywhere rather than crash-loop;
        # peers can only reach us if that address routes here, so say so.
        log.warning(
            "membership.address_not_local node=%s address=%s note=listening on all addresses; peers send "
            "heartbeats to %s, so fix the Node's InternalIP if it is not this host's",
            node_name, want[0], want[0],
        )  # fmt: skip
        want = ("::" if family == socket.AF_INET6 else "0.0.0.0", want[1])
        sock.bind(want)
    sock.setblocking(False)
    return sock, want
