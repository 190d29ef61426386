"""The wire side of layer 2: packet sockets per interface and the thread answering on them.

One thread polls every open socket and answers ARP requests and Neighbor
Solicitations for the IPs in `owned`, which the control side replaces as a
whole (an immutable mapping swapped by one attribute assignment, atomic under
the GIL): a request is checked against the mapping current when it is read,
so a reply is never sent for an IP that was already withdrawn, and `update()`
never blocks answering.

Per interface there are two sockets, each with a kernel BPF filter (see
`bpf`): one bound to ETH_P_ARP and one to ETH_P_IPV6. Binding to a protocol
rather than ETH_P_ALL means the kernel never loops our own transmitted
frames back to us. Sockets are opened before anything is owned (hot
standby): a takeover then costs only the gratuitous burst.

Frames are read and answered in batches (recvmmsg/sendmmsg through the
host's `batchio`): the first SINGLES frames after a wake-up with plain
recv/send, so a lone request pays nothing for batching, then up to BATCH a
system call each way. A batch is whatever is queued; nothing waits for more.

Counters are plain dicts written only by this thread; the control side reads
copies and turns them into metric deltas on its tick, because a queue or a
lock per packet would cost more than the reply itself at 100k requests/s.
Where the host can run it, ARP requests and Neighbor Solicitations for owned
IPs are answered before they reach these sockets, in the kernel
(`kernel_arp`): the responder keeps its maps equal to `owned` and answers
whatever the program hands on, so where a reply is made changes, never what
is answered.

What this module does not do: decide what is owned, or when to send gratuitous
frames (see `announcer`, `gratuitous`).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from plugins.layer2 import bpf, frames
from plugins.layer2.kernel_arp import KernelArp
from supervisor.api import batchio, ebpf

log = logging.getLogger(__name__)

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_MR_MULTICAST = 0
PACKET_STATISTICS = 6
# Room for requests queued while the thread is descheduled on a busy host:
# 16 MiB holds ~20,000 frames (skb overhead included), 200 ms at 100k/s. Only
# memory actually queued is used. SO_RCVBUFFORCE (CAP_NET_ADMIN, which the
# speaker has) passes net.core.rmem_max; without it the kernel caps silently.
RECEIVE_BUFFER = 16 << 20
SO_RCVBUFFORCE = 33
# Frames read per recvmmsg(2), and replies sent per sendmmsg(2): one system
# call and one trip through ctypes per batch instead of per frame. A call
# returns what is queued, never waits for more, so a lone request is answered
# as soon as it is read.
BATCH = 64
# Batches read from one socket before looking at the others, so a flood on
# one interface does not starve another (512 frames).
ROUNDS = 8
# Frames read one recv(2) at a time after a wake-up before batching (see `_drain_arp`).
SINGLES = 2
# Bytes kept of each frame: an ARP frame is 42 (60 padded on a real wire), a
# Neighbor Solicitation 86 with its option; the BPF filters pass at most 256.
ARP_SLOT = 64
NDP_SLOT = bpf.ACCEPT
POLL_MS = 500

_ARP_REPLY_HEAD = struct.pack("!HHBBH", 1, frames.ETH_P_IP, 6, 4, frames.ARP_REPLY)
_ETHERTYPE_ARP = struct.pack("!H", frames.ETH_P_ARP)
_ARP_REPLY_PREFIX = _ETHERTYPE_ARP + _ARP_REPLY_HEAD
_OP_REQUEST = struct.pack("!H", frames.ARP_REQUEST)
# One received ARP slot: Ethernet source, ethertype, opcode, sender MAC and IP
# (together: they go back in that order), target IP. The rest is skipped.
_ARP_SLOT = struct.Struct(f"6x6s2s6x2s10s6x4s{ARP_SLOT - frames.ARP_FRAME_LEN}x")

# Packed IP -> names of the interfaces it is answered on.
OwnedMap = Mapping[bytes, frozenset[str]]
EMPTY: OwnedMap = MappingProxyType({})
_NOWHERE: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Duplicate:
    """Another MAC claimed an IP we own (an ARP reply, gratuitous ARP or NA)."""

    ip: bytes
    mac: bytes
    interface: str


@dataclass(slots=True, kw_only=True)
class Port:
    """One interface's sockets; `groups` are the multicast MACs joined on the IPv6 socket."""

    name: str
    index: int
    mac: bytes
    arp: socket.socket
    ndp: socket.socket
    groups: set[bytes] = field(default_factory=set)

    def close(self) -> None:
        self.arp.close()
        self.ndp.close()


def _union(a: OwnedMap, b: OwnedMap) -> dict[bytes, frozenset[str]]:
    """Per IP, the interfaces of either map."""
    merged = dict(a)
    for ip, on in b.items():
        merged[ip] = merged.get(ip, _NOWHERE) | on
    return merged


def _group(ip: bytes) -> bytes:
    return frames.multicast_mac(frames.solicited_node(ip))


def open_packet_socket(ifname: str, proto: int, program: bpf.Program) -> socket.socket:
    """A non-blocking packet socket on `ifname` that only ever queued filtered frames.

    Created with protocol 0 (receives nothing), filtered, then bound: no
    unfiltered frame can slip in between socket() and SO_ATTACH_FILTER.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        bpf.attach(sock, program)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((ifname, proto))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Responder:
    """Answers for `owned` IPs on every open port, from one thread."""

    def __init__(self, *, kernel: KernelArp | None = None, kernel_unavailable: str = "") -> None:
        self._ports: Mapping[str, Port] = MappingProxyType({})
        # The in-kernel ARP and NDP answers (control side only), or why there are none.
        self._kernel = kernel
        self._kernel_unavailable = kernel_unavailable
        # The kernel's per-IP totals (its dicts: `stats.Counts.forget` shrinks them with the responder's).
        self._kernel_counted: tuple[dict[bytes, int], dict[bytes, int]] = (
            (kernel.requests, kernel.responses) if kernel is not None else ({}, {})
        )
        self._owned4: OwnedMap = EMPTY
        self._owned6: OwnedMap = EMPTY
        # Yielded IPs (see `conflicts`): never answered, but claims of them by
        # other MACs are still reported, so the yield lasts while the keeper is heard.
        self._watched4: OwnedMap = EMPTY
        self._watched6: OwnedMap = EMPTY
        # Owned or watched IPv4 IPs: where a claim by another MAC is a duplicate.
        self._claimed4: OwnedMap = EMPTY
        self._our_macs: frozenset[bytes] = frozenset()
        self._retired: list[Port] = []
        self._lock = threading.Lock()  # control side only: open/close/membership
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Written only by the responder thread (see the module docstring).
        self.requests: dict[bytes, int] = {}
        self.responses: dict[bytes, int] = {}
        self.ignored = 0
        self.duplicates: collections.deque[Duplicate] = collections.deque(maxlen=1024)
        # Buffers for the batched reads and sends, allocated once (responder thread only).
        self._arp_in = batchio.Receiver(BATCH, ARP_SLOT)
        self._arp_out = batchio.Sender(BATCH, frames.ARP_FRAME_LEN)
        self._ndp_in = batchio.Receiver(BATCH, NDP_SLOT)
        self._ndp_out = batchio.Sender(BATCH, NDP_SLOT)

    # -- control side -------------------------------------------------------

    @property
    def ports(self) -> Mapping[str, Port]:
        return self._ports

    def open(self, name: str, index: int, mac: bytes) -> None:
        """Open (or reopen, when the MAC changed) the sockets of one interface."""
        with self._lock:
            current = self._ports.get(name)
            if current is not None and current.index == index and current.mac == mac:
                return
            arp = open_packet_socket(name, frames.ETH_P_ARP, bpf.ARP_FILTER)
            try:
                ndp = open_packet_socket(name, frames.ETH_P_IPV6, bpf.NDP_FILTER)
            except OSError:
                arp.close()
                raise
            ports = dict(self._ports)
            ports[name] = Port(name=name, index=index, mac=mac, arp=arp, ndp=ndp)
            self._publish(ports, retire=current)
            self._attach_kernel(name, index, mac)
        log.info("layer2.socket.opened interface=%s mac=%s", name, frames.mac_text(mac))

    def close(self, name: str) -> None:
        with self._lock:
            current = self._ports.get(name)
            if current is None:
                return
            ports = dict(self._ports)
            del ports[name]
            self._publish(ports, retire=current)
            if self._kernel is not None:
                self._kernel.detach(name)
                self._sync_kernel()
        log.info("layer2.socket.closed interface=%s", name)

    def _attach_kernel(self, name: str, index: int, mac: bytes) -> None:
        """In-kernel answers on a (re)opened interface; on failure the sockets answer there."""
        if self._kernel is None:
            return
        try:
            self._kernel.attach(name, index, mac)
        except ebpf.Unavailable as exc:
            # The host cannot attach anywhere (no tcx links before Linux 6.6,
            # no CAP_NET_ADMIN): answer from user space, and say why.
            log.warning("layer2.kernel_arp.unavailable interface=%s error=%s (answered from user space)", name, exc)
            self._kernel.close()
            self._kernel, self._kernel_unavailable = None, str(exc)
            return
        except OSError as exc:
            log.warning("layer2.kernel_arp.attach_failed interface=%s error=%s (answered from user space)", name, exc)
            self._kernel.detach(name)
        self._sync_kernel()

    def _sync_kernel(self) -> None:
        if self._kernel is not None:
            indexes = {name: port.index for name, port in self._ports.items()}
            self._kernel.sync(self._owned4, self._watched4, indexes, self._our_macs,
                              owned6=self._owned6, watched6=self._watched6)  # fmt: skip
            self._kernel.renew()

    def _publish(self, ports: dict[str, Port], *, retire: Port | None) -> None:
        self._ports = MappingProxyType(ports)
        self._our_macs = frozenset(p.mac for p in ports.values())
        if retire is not None:
            if self._thread is None:
                retire.close()
            else:
                # The serving thread may be inside recv() on it: it closes it.
                self._retired.append(retire)
        self._wake()

    def set_owned(self, owned4: OwnedMap, owned6: OwnedMap) -> None:
        """Replace what is answered; joins the solicited-node groups IPv6 needs first."""
        self._sync_groups(owned6)
        # Private copies, never mutated once published: plain dicts, because a
        # MappingProxyType's get() is a method call through the proxy, on
        # every frame. Claims first, so an owned IP is always in them.
        owned4 = dict(owned4)
        self._claimed4 = _union(owned4, self._watched4)
        self._owned4 = owned4
        self._owned6 = dict(owned6)
        with self._lock:
            self._sync_kernel()

    def set_watched(self, watched4: OwnedMap, watched6: OwnedMap) -> None:
        """Replace the IPs (and interfaces) only watched for claims by other MACs: never answered."""
        self._watched4 = dict(watched4)
        self._claimed4 = _union(self._owned4, self._watched4)
        self._watched6 = dict(watched6)
        with self._lock:
            self._sync_kernel()

    def kernel_tick(self, now: float) -> tuple[dict[bytes, int], dict[bytes, int]]:
        """Renew the in-kernel answers' lease; the requests and responses counted there, per packed IP.

        Called on every announcer tick: when the ticks stop, so do the
        kernel's answers (`kernel_arp.LEASE_SECONDS`). The counts are
        cumulative (see `kernel_arp`).
        """
        if self._kernel is None:
            return self._kernel_counted  # the last, after `stop`
        with self._lock:
            self._kernel.renew()
            self._kernel.refresh_counts(now)
        return self._kernel_counted

    def kernel_status(self) -> dict[str, Any]:
        """Where ARP and NDP are answered: the interfaces with the kernel program, or why none."""
        if self._kernel is None:
            return {"interfaces": [], "entries": 0, "unavailable": self._kernel_unavailable or "turned off"}
        return {"interfaces": self._kernel.interfaces, "entries": self._kernel.entries, "unavailable": ""}

    def _sync_groups(self, owned6: OwnedMap) -> None:
        with self._lock:
            for port in self._ports.values():
                wanted = {_group(ip) for ip, on in owned6.items() if port.name in on}
                for group in wanted - port.groups:
                    self._membership(port, group, PACKET_ADD_MEMBERSHIP)
                for group in port.groups - wanted:
                    self._membership(port, group, PACKET_DROP_MEMBERSHIP)
                port.groups = wanted

    @staticmethod
    def _membership(port: Port, group: bytes, action: int) -> None:
        mreq = struct.pack("iHH8s", port.index, PACKET_MR_MULTICAST, 6, group)
        try:
            port.ndp.setsockopt(SOL_PACKET, action, mreq)
        except OSError as exc:
            log.warning("layer2.multicast.failed interface=%s group=%s error=%s", port.name, group.hex(), exc)

    def take_drops(self) -> dict[str, int]:
        """Frames the kernel dropped because a socket's queue was full, per interface, since the last call.

        PACKET_STATISTICS resets on every read, so each call returns a delta.
        """
        drops: dict[str, int] = {}
        for port in list(self._ports.values()):
            for sock in (port.arp, port.ndp):
                try:
                    _, dropped = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
                except OSError:
                    continue
                if dropped:
                    drops[port.name] = drops.get(port.name, 0) + dropped
        return drops

    def send(self, name: str, frame: bytes) -> bool:
        """Transmit one frame on an interface; False when it is gone or down."""
        port = self._ports.get(name)
        if port is None:
            return False
        try:
            port.arp.send(frame)
        except OSError as exc:
            log.debug("layer2.send.failed interface=%s error=%s", name, exc)
            return False
        return True

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="layer2-responder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._owned4 = self._owned6 = self._watched4 = self._watched6 = self._claimed4 = EMPTY
        if self._kernel is not None:
            with self._lock:
                self._kernel.refresh_counts(0.0, force=True)
                self._kernel.close()  # detached everywhere: nothing is answered any more
                self._kernel, self._kernel_unavailable = None, "stopped"
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            for port in [*self._ports.values(), *self._retired]:
                port.close()
            self._ports = MappingProxyType({})
            self._retired.clear()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    # -- responder thread ---------------------------------------------------

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        by_fd: dict[int, tuple[Port, bool]] = {}
        by_fd = self._register(poller, by_fd)
        while not self._stopping:
            for fd, _ in poller.poll(POLL_MS):
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    by_fd = self._register(poller, by_fd)
                    continue
                entry = by_fd.get(fd)
                if entry is None:
                    continue
                port, is_arp = entry
                try:
                    if is_arp:
                        self._drain_arp(port)
                    else:
                        self._drain_ndp(port)
                except Exception:
                    # Never let one odd frame or socket end answering.
                    log.exception("layer2.responder.error interface=%s", port.name)

    def _register(self, poller: select.poll, old: dict[int, tuple[Port, bool]]) -> dict[int, tuple[Port, bool]]:
        for fd in old:
            poller.unregister(fd)
        with self._lock:
            retired, self._retired = self._retired, []
            ports = list(self._ports.values())
        for port in retired:
            port.close()
        fresh: dict[int, tuple[Port, bool]] = {}
        for port in ports:
            for sock, is_arp in ((port.arp, True), (port.ndp, False)):
                fresh[sock.fileno()] = (port, is_arp)
                poller.register(sock, select.POLLIN)
        return fresh

    def _drain_arp(self, port: Port) -> None:
        sock, name = port.arp, port.name
        # Ethernet source, ethertype, ARP head and sender MAC: the part of every
        # reply on this port that no request changes.
        head = port.mac + _ARP_REPLY_PREFIX + port.mac
        # The first frames after a wake-up are read with recv(2) and answered
        # with send(2), as before batching: a lone request, the usual case off
        # a flood, pays no ctypes call, and the read that finds the queue
        # empty is the same recv(2). A frame queued behind the first means a
        # burst: from there it is read and answered in batches, one system
        # call per BATCH frames each way.
        for _ in range(SINGLES):
            frame = self._recv_one(sock, name, ARP_SLOT)
            if frame is None:
                return
            self._answer_one_arp(sock, name, head, frame)
        rx = self._arp_in
        for _ in range(ROUNDS):
            n = self._receive(rx, sock, name)
            if not n:
                return
            block, lengths = rx.packed()
            replies, answered = self._answer_arp(name, head, block, lengths)
            self._send(sock, replies, answered)
            if n < rx.count:
                return  # drained: never wait to fill a batch

    def _answer_one_arp(self, sock: socket.socket, name: str, head: bytes, frame: bytes) -> None:
        """`_answer_arp`'s checks for one frame, written out with slices: no struct, list or extra call.

        The lone request is what the latency target measures; the batch path's
        setup (a padded copy, an unpacker, two lists) cost it ~2-3 us.
        """
        ours = self._our_macs
        if len(frame) < frames.ARP_FRAME_LEN or frame[12:14] != _ETHERTYPE_ARP or frame[6:12] in ours:
            self.ignored += 1
            return
        sender = frame[22:32]
        if name in self._claimed4.get(sender[6:], _NOWHERE) and sender[:6] not in ours:
            self.duplicates.append(Duplicate(ip=sender[6:], mac=sender[:6], interface=name))
            return
        if frame[20:22] != _OP_REQUEST:
            return
        target_ip = frame[38:42]
        where = self._owned4.get(target_ip)
        if where is None or name not in where:
            return
        self.requests[target_ip] = self.requests.get(target_ip, 0) + 1
        try:
            sock.send(sender[:6] + head + target_ip + sender)
        except OSError:
            return
        self.responses[target_ip] = self.responses.get(target_ip, 0) + 1

    def _answer_arp(
        self, name: str, head: bytes, block: bytes, lengths: Iterable[int]
    ) -> tuple[list[bytes], list[bytes]]:
        """The replies to the requests in `block` (ARP_SLOT bytes per frame) and the IPs they answer for.

        The maps current when the frames were read: each request is checked
        against them on its own.
        """
        owned, claimed, ours, duplicates = self._owned4, self._claimed4, self._our_macs, self.duplicates
        replies: list[bytes] = []
        answered: list[bytes] = []
        ignored = 0
        slots = _ARP_SLOT.iter_unpack(block)
        for length, (eth_src, ethertype, op, sender, target_ip) in zip(lengths, slots, strict=True):
            if length < frames.ARP_FRAME_LEN or ethertype != _ETHERTYPE_ARP or eth_src in ours:
                ignored += 1
                continue
            # Another MAC claiming an IP we announce (or yielded) here; on
            # another segment the same address may belong to someone else.
            if name in claimed.get(sender[6:], _NOWHERE) and sender[:6] not in ours:
                duplicates.append(Duplicate(ip=sender[6:], mac=sender[:6], interface=name))
                continue
            if op != _OP_REQUEST:
                continue
            where = owned.get(target_ip)
            if where is None or name not in where:
                continue
            # To the sender's MAC, from ours; then the target (ours) and the
            # sender's MAC and IP, which `sender` already holds in that order.
            replies.append(sender[:6] + head + target_ip + sender)
            answered.append(target_ip)
        self.ignored += ignored
        return replies, answered

    def _drain_ndp(self, port: Port) -> None:
        sock, name = port.ndp, port.name
        # As for ARP: plain reads first, batches once frames queue up. Every
        # frame goes out on the port's first socket (bound to ARP; a packet
        # socket sends whatever ethertype the frame carries).
        for _ in range(SINGLES):
            frame = self._recv_one(sock, name, NDP_SLOT)
            if frame is None:
                return
            self._send(port.arp, *self._answer_ndp(port, [frame]))
        rx = self._ndp_in
        for _ in range(ROUNDS):
            n = self._receive(rx, sock, name)
            if not n:
                return
            self._send(port.arp, *self._answer_ndp(port, [bytes(rx.data(i)) for i in range(n)]))
            if n < rx.count:
                return

    def _answer_ndp(self, port: Port, received: list[bytes]) -> tuple[list[bytes], list[bytes]]:
        """The Neighbor Advertisements answering the solicitations in `received`, and their targets."""
        owned, watched, ours, name = self._owned6, self._watched6, self._our_macs, port.name
        replies: list[bytes] = []
        answered: list[bytes] = []
        for frame in received:
            packet = frames.parse_ndp(frame)
            if packet is None or packet.eth_src in ours:
                self.ignored += 1
                continue
            where = owned.get(packet.target, _NOWHERE)
            if packet.type == frames.NDP_NA:
                claimed = packet.link_addr or packet.eth_src
                if (name in where or name in watched.get(packet.target, _NOWHERE)) and claimed not in ours:
                    self.duplicates.append(Duplicate(ip=packet.target, mac=claimed, interface=name))
                continue
            if name not in where:
                continue
            replies.append(frames.na_reply(packet, port.mac))
            answered.append(packet.target)
        return replies, answered

    @staticmethod
    def _recv_one(sock: socket.socket, name: str, size: int) -> bytes | None:
        try:
            return sock.recv(size)
        except BlockingIOError:
            return None
        except OSError as exc:
            _recv_failed(name, exc)
            return None

    @staticmethod
    def _receive(rx: batchio.Receiver, sock: socket.socket, name: str) -> int:
        try:
            return rx.receive(sock)
        except OSError as exc:
            _recv_failed(name, exc)
            return 0

    def _send(self, sock: socket.socket, replies: list[bytes], answered: list[bytes]) -> None:
        """Send the replies, in one system call; count the requests, and the replies the kernel took, per IP.

        ARP replies all have one size: the batch goes as one block
        (`send_packed`); Neighbor Advertisements one by one into the slots.
        """
        if not replies:
            return
        requests, responses = self.requests, self.responses
        for ip in answered:
            requests[ip] = requests.get(ip, 0) + 1
        if len(replies) == 1:
            try:
                sock.send(replies[0])
            except OSError:
                return
        else:
            if len(replies[0]) == frames.ARP_FRAME_LEN:
                failed = self._arp_out.send_packed(sock, b"".join(replies))
            else:
                failed = self._ndp_out.send(sock, [(reply, None) for reply in replies])
            if failed:
                refused = {index for index, _ in failed}
                answered = [ip for index, ip in enumerate(answered) if index not in refused]
        for ip in answered:
            responses[ip] = responses.get(ip, 0) + 1


def _recv_failed(name: str, exc: OSError) -> None:
    # ENETDOWN is reported once when the link goes down; the socket works
    # again when it comes back.
    if exc.errno != errno.ENETDOWN:
        log.warning("layer2.recv.failed interface=%s error=%s", name, exc)
