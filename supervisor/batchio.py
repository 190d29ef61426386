"""Many datagrams per system call: recvmmsg(2) and sendmmsg(2) through ctypes, into preallocated buffers.

The socket module reads and writes one datagram per call, and in Python the
call costs more than the kernel's work for a small datagram: the membership
loop read ~100k junk datagrams a second with one `recvfrom` each under a
flood, and the kernel dropped the rest (BENCHMARKS.md, "Membership under a
heartbeat-port flood"). Here one call moves up to `count` datagrams, and
nothing is allocated per datagram unless the caller asks for it:

- `Receiver`: one big buffer cut into `count` slots of `size` bytes, the
  sources' sockaddrs beside it and the `struct mmsghdr` array pointing into
  both, all built once. `receive(fd)` fills them and returns how many came;
  `data(i)` is a memoryview of datagram i (valid until the next `receive`),
  `length(i)` and `truncated(i)` read the header through a word view (no
  ctypes attribute access per datagram), and `source(i)` decodes the
  sender's address the way `recvfrom` does, through a small cache, so a
  flood from one address costs a dict lookup per datagram.
- Arrival times: a `Receiver(timestamps=True)` also has room for one
  control message per datagram, and once the socket has
  `enable_timestamps` (SO_TIMESTAMPNS) `arrivals()` gives each datagram's
  kernel receive time, read at fixed offsets (membership counts a heartbeat
  from its arrival, not from a batched read).
- `Sender`: the same for sendmmsg: `send(fd, messages)` copies each
  (payload, address) into its slot and sends up to `count` per call; a
  message the kernel refuses (an unreachable peer) is returned with its
  error and the rest still go, as separate `sendto` calls would.

No dependency: the structures are Linux's (x86-64 and arm64 share the
layout; the offsets are read from ctypes, not assumed). What this module does
not do: wait for readiness (callers `select`), parse what they read, or know
anything about membership or layer 2. The lab flooder (supervisor/lab/flood.py)
uses the same structures.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
# sizeof(struct sockaddr_storage): room for any address family's sockaddr.
NAME_SIZE = 128
# How many decoded source addresses `Receiver.source` keeps (cleared when full,
# so a flood from random forged sources costs a decode each, never memory).
SOURCE_CACHE = 1024

# What `source` gives: ("host", port) for IPv4; ("host", port, flowinfo,
# scope_id) for IPv6, as socket.recvfrom; (ifindex, protocol, pkttype, hatype,
# hardware address) for AF_PACKET (recvfrom gives the interface's name, which
# would cost a lookup per datagram); the raw sockaddr bytes for any other
# family; None when the kernel gave no address (a connected AF_UNIX pair).
Address = tuple[Any, ...] | bytes | None


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(IOVec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


_HEADER = ctypes.sizeof(MMsgHdr)
# Word (uint32) indexes inside one mmsghdr, for the header's memoryview.
_STRIDE = _HEADER // 4
_NAMELEN = MsgHdr.namelen.offset // 4
_FLAGS = MsgHdr.flags.offset // 4
_LEN = MMsgHdr.len.offset // 4
_CONTROLLEN_AT = MsgHdr.controllen.offset  # bytes into an mmsghdr (a size_t the kernel sets to what it wrote)
# sockaddr_ll after its family: protocol (network order), ifindex, hatype, pkttype, halen, addr[8].
_SOCKADDR_LL = struct.Struct("!H")
_SOCKADDR_LL_REST = struct.Struct("=iHBB8s")


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, with recvmmsg and sendmmsg typed (errno kept for OSError)."""
    lib = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    lib.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    lib.recvmmsg.restype = ctypes.c_int
    lib.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    lib.sendmmsg.restype = ctypes.c_int
    return lib


def _fileno(sock: socket.socket | int) -> int:
    return sock if isinstance(sock, int) else sock.fileno()


def _error() -> OSError:
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code))


class _CMsgHdr(ctypes.Structure):
    _fields_ = [("len", ctypes.c_size_t), ("level", ctypes.c_int), ("type", ctypes.c_int)]


class _TimeSpec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


def _cmsg_align(n: int) -> int:
    word = ctypes.sizeof(ctypes.c_size_t)
    return (n + word - 1) & ~(word - 1)


# One control message per datagram: a cmsghdr and the kernel's receive time (CMSG_SPACE of a timespec).
_STAMP_AT = _cmsg_align(ctypes.sizeof(_CMsgHdr))
STAMP_SPACE = _STAMP_AT + _cmsg_align(ctypes.sizeof(_TimeSpec))
_SIZE_T = "Q" if ctypes.sizeof(ctypes.c_size_t) == 8 else "I"
# cmsg_len, cmsg_level, cmsg_type, padding to the data, tv_sec, tv_nsec.
_STAMP = struct.Struct(f"@{_SIZE_T}ii{_STAMP_AT - ctypes.sizeof(_CMsgHdr)}xll")
_CONTROLLEN = struct.Struct("@" + _SIZE_T)
# SO_TIMESTAMPNS (the generic Linux value: x86, arm, arm64, riscv; the socket module does not name it);
# the control message that carries the time has the same number.
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS


def enable_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram with its arrival time (wall clock, ns); False where it cannot."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class _Slots:
    """`count` buffers of `size` bytes, `count` sockaddrs, `control` bytes each for control messages
    (0: none), and the mmsghdr array pointing at them."""

    def __init__(self, count: int, size: int, control: int = 0) -> None:
        if count < 1 or size < 1:
            raise ValueError(f"batchio: count ({count}) and size ({size}) must be at least 1")
        self.count, self.size, self.control = count, size, control
        self.buffer = bytearray(count * size)
        self.names = bytearray(count * NAME_SIZE)
        self.controls = bytearray(max(1, count * control))
        self.headers = bytearray(count * _HEADER)
        iov_bytes = bytearray(count * ctypes.sizeof(IOVec))
        self.iovs = (IOVec * count).from_buffer(iov_bytes)
        # iov_len (a size_t) of slot i, written by the Sender per message.
        raw = memoryview(iov_bytes)
        self.iov_lens = (raw.cast("Q") if ctypes.sizeof(ctypes.c_size_t) == 8 else raw.cast("I"))[1::2]
        self.msgs = (MMsgHdr * count).from_buffer(self.headers)
        data = ctypes.addressof(ctypes.c_char.from_buffer(self.buffer))
        names = ctypes.addressof(ctypes.c_char.from_buffer(self.names))
        controls = ctypes.addressof(ctypes.c_char.from_buffer(self.controls))
        for i in range(count):
            self.iovs[i].base, self.iovs[i].len = data + i * size, size
            hdr = self.msgs[i].hdr
            hdr.name, hdr.namelen = names + i * NAME_SIZE, NAME_SIZE
            hdr.iov, hdr.iovlen = ctypes.pointer(self.iovs[i]), 1
            if control:
                hdr.control, hdr.controllen = controls + i * control, control
        self.pointer = ctypes.addressof(self.msgs)
        self.view = memoryview(self.buffer)
        self.names_view = memoryview(self.names)
        self.words = memoryview(self.headers).cast("I")
        self.slots = [self.view[i * size : (i + 1) * size] for i in range(count)]


class Receiver:
    """recvmmsg(2) into buffers allocated once: `receive`, then `data(i)` / `source(i)` for i < the count.

    `timestamps`: room for each datagram's arrival time, which the kernel
    fills once the socket has `enable_timestamps`; `arrivals()` reads them.
    """

    def __init__(self, count: int = 64, size: int = 2048, *, timestamps: bool = False) -> None:
        self._s = _Slots(count, size, STAMP_SPACE if timestamps else 0)
        self.count, self.size = count, size
        # The headers as built: every receive starts from them (the kernel
        # shrinks msg_namelen to the address it wrote, and sets len and flags).
        self._pristine = bytes(self._s.headers)
        self._sources: dict[bytes, Address] = {}
        self.received = 0

    def receive(self, sock: socket.socket | int, *, limit: int | None = None, flags: int = MSG_DONTWAIT) -> int:
        """Read up to `limit` (at most `count`) queued datagrams; how many came (0: none queued, or interrupted).

        Raises OSError for any other error (a closed descriptor, ECONNREFUSED
        reported from an earlier send), as `recvfrom` would.
        """
        s = self._s
        s.headers[:] = self._pristine
        want = self.count if limit is None else max(0, min(limit, self.count))
        n = int(libc().recvmmsg(_fileno(sock), s.pointer, want, flags, None))
        if n < 0:
            self.received = 0
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(err, os.strerror(err))
        self.received = n
        return n

    def length(self, i: int) -> int:
        """Bytes of datagram i that are in its slot (at most `size`)."""
        return int(self._s.words[i * _STRIDE + _LEN])

    def truncated(self, i: int) -> bool:
        """Datagram i was longer than `size`: only its first `size` bytes are here."""
        return bool(self._s.words[i * _STRIDE + _FLAGS] & MSG_TRUNC)

    def data(self, i: int) -> memoryview:
        """Datagram i, in place: valid until the next `receive` (copy with bytes() to keep it)."""
        return self._s.slots[i][: self._s.words[i * _STRIDE + _LEN]]

    def packed(self) -> tuple[bytes, memoryview]:
        """The last `receive`'s datagrams in one copy, and their lengths: for `struct.iter_unpack`.

        Datagram i is the first `lengths[i]` bytes of slot i, bytes
        `[i * size, (i + 1) * size)` of the copy; the rest of a slot is left
        over from an earlier datagram, so never read past a datagram's length.
        The lengths are a view of the headers, valid until the next `receive`.
        The cheapest way through a batch of small fixed-layout frames (layer
        2's ARP requests): one copy and one view, nothing per datagram.
        """
        s, n = self._s, self.received
        return s.view[: n * self.size].tobytes(), s.words[_LEN : n * _STRIDE : _STRIDE]

    def datagrams(self) -> list[tuple[bytes, Address]]:
        """Every datagram of the last `receive` as (bytes, source), like that many `recvfrom` calls.

        The loop is here, over local names, rather than a `data(i)` and a
        `source(i)` call per datagram: this is the hot path of a flood.
        """
        s, cache, decode = self._s, self._sources, decode_address
        words, slots = s.words, s.slots
        # One copy of every sockaddr, then bytes slices (no memoryview per datagram).
        names = s.names_view[: self.received * NAME_SIZE].tobytes()
        out = []
        for i in range(self.received):
            header = i * _STRIDE
            start = i * NAME_SIZE
            raw = names[start : start + words[header + _NAMELEN]]
            try:
                source = cache[raw]
            except KeyError:
                if len(cache) >= SOURCE_CACHE:
                    cache.clear()
                source = cache[raw] = decode(raw)
            out.append((slots[i][: words[header + _LEN]].tobytes(), source))
        return out

    def arrivals(self) -> list[float]:
        """When each datagram of the last `receive` arrived, in wall-clock seconds (0.0: no time came with it).

        The kernel's own stamp, taken as the datagram was queued: how long it
        then waited for us to read it does not count. 0.0 for every datagram
        of a receiver made without `timestamps` or a socket without
        `enable_timestamps`.
        """
        s = self._s
        if not s.control:
            return [0.0] * self.received
        out = []
        for i in range(self.received):
            (controllen,) = _CONTROLLEN.unpack_from(s.headers, i * _HEADER + _CONTROLLEN_AT)
            if controllen >= _STAMP.size:
                length, level, kind, sec, nsec = _STAMP.unpack_from(s.controls, i * s.control)
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and length >= _STAMP.size:
                    out.append(sec + nsec * 1e-9)
                    continue
            out.append(0.0)
        return out

    def source_raw(self, i: int) -> bytes:
        """The sockaddr the kernel wrote for datagram i (b"" when none)."""
        start = i * NAME_SIZE
        return bytes(self._s.names[start : start + self._s.words[i * _STRIDE + _NAMELEN]])

    def source(self, i: int) -> Address:
        """Who sent datagram i, decoded like `recvfrom`'s address (see `Address`)."""
        raw = self.source_raw(i)
        try:
            return self._sources[raw]
        except KeyError:
            if len(self._sources) >= SOURCE_CACHE:
                self._sources.clear()
            address = self._sources[raw] = decode_address(raw)
            return address


def decode_address(raw: bytes) -> Address:
    """A sockaddr's bytes as Python's socket module writes that address (see `Address`)."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], "little" if struct.pack("=H", 1) == b"\x01\x00" else "big")
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6 and len(raw) >= 28:
        flowinfo = int.from_bytes(raw[4:8], "big")
        scope_id = struct.unpack("=I", raw[24:28])[0]
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), int.from_bytes(raw[2:4], "big"), flowinfo, scope_id
    if family == socket.AF_PACKET and len(raw) >= 20:
        (protocol,) = _SOCKADDR_LL.unpack_from(raw, 2)
        ifindex, hatype, pkttype, halen, hwaddr = _SOCKADDR_LL_REST.unpack_from(raw, 4)
        return ifindex, protocol, pkttype, hatype, hwaddr[:halen]
    return raw


@functools.lru_cache(maxsize=4096)
def encode_address(address: tuple[Any, ...]) -> bytes:
    """("host", port) or ("host", port, flowinfo, scope_id) as a sockaddr_in / sockaddr_in6.

    The family follows the host: an IPv6 address makes a sockaddr_in6; a
    scoped one ("fe80::1%eth0" or "%2") gets that interface's index.
    Cached: a node sends to the same peers every interval.
    """
    host, port = address[0], address[1]
    order = "=H"
    if ":" in host:
        host, _, scope = host.partition("%")
        flowinfo = address[2] if len(address) > 2 else 0
        scope_id = address[3] if len(address) > 3 else 0
        if scope and not scope_id:
            # "fe80::1%eth0", as sendto takes it: the interface's index.
            scope_id = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
        packed = socket.inet_pton(socket.AF_INET6, host)
        return (struct.pack(order, socket.AF_INET6) + struct.pack("!HI", port, flowinfo) + packed
                + struct.pack("=I", scope_id))  # fmt: skip
    packed = socket.inet_pton(socket.AF_INET, host)
    return struct.pack(order, socket.AF_INET) + struct.pack("!H", port) + packed + bytes(8)


class Sender:
    """sendmmsg(2) from buffers allocated once: `send(fd, [(payload, address), ...])`."""

    def __init__(self, count: int = 64, size: int = 2048) -> None:
        self._s = _Slots(count, size)
        self.count, self.size = count, size

    def send(
        self, sock: socket.socket | int, messages: Sequence[tuple[bytes, tuple[Any, ...] | None]], *, flags: int = 0
    ) -> list[tuple[int, OSError]]:
        """Send every message (None as the address: the socket's connected peer); the ones refused, with why.

        Up to `count` per system call. A message the kernel refuses is
        returned as (its index in `messages`, the error) and sending goes on
        with the next one, as a loop of `sendto` calls that catches OSError
        would. A payload longer than `size` is a ValueError before anything is sent.
        """
        for payload, _ in messages:
            if len(payload) > self.size:
                raise ValueError(
                    f"batchio.Sender: a {len(payload)}-byte datagram does not fit its {self.size}-byte slot"
                )
        failed: list[tuple[int, OSError]] = []
        fd, s, lens, words = _fileno(sock), self._s, self._s.iov_lens, self._s.words
        start = 0
        while start < len(messages):
            batch = messages[start : start + self.count]
            for i, (payload, address) in enumerate(batch):
                at = i * self.size
                s.buffer[at : at + len(payload)] = payload
                lens[i] = len(payload)
                name = b"" if address is None else encode_address(address)
                s.names[i * NAME_SIZE : i * NAME_SIZE + len(name)] = name
                words[i * _STRIDE + _NAMELEN] = len(name)
            self._transmit(fd, len(batch), start, flags, failed)
            start += len(batch)
        return failed

    def send_packed(self, sock: socket.socket | int, block: bytes, *, flags: int = 0) -> list[tuple[int, OSError]]:
        """Send `block` cut into datagrams of exactly `size` bytes, to the socket's peer; the ones refused, with why.

        For a connected socket, or a packet socket bound to its interface (the
        datagrams carry no address). One copy per `count` datagrams instead
        of one per datagram (`send`), for replies that all have one size.
        Refusals as in `send`, indexed by datagram number in `block`. A block
        that is not a whole number of datagrams is a ValueError before
        anything is sent.
        """
        size = self.size
        if len(block) % size:
            raise ValueError(
                f"batchio.Sender: a {len(block)}-byte block is not a whole number of {size}-byte datagrams"
            )
        fd, s, lens, words = _fileno(sock), self._s, self._s.iov_lens, self._s.words
        failed: list[tuple[int, OSError]] = []
        total, start = len(block) // size, 0
        while start < total:
            k = min(self.count, total - start)
            s.buffer[: k * size] = block[start * size : (start + k) * size]
            for i in range(k):
                lens[i] = size
                words[i * _STRIDE + _NAMELEN] = 0
            self._transmit(fd, k, start, flags, failed)
            start += k
        return failed

    def _transmit(self, fd: int, k: int, start: int, flags: int, failed: list[tuple[int, OSError]]) -> None:
        """sendmmsg the first `k` slots until each was sent or refused; refusals go to `failed` as start + slot."""
        done = 0
        while done < k:
            n = int(libc().sendmmsg(fd, self._s.pointer + done * _HEADER, k - done, flags))
            if n < 0:
                # The first message of what was left was refused: note it, go on after it.
                failed.append((start + done, _error()))
                n = 1
            done += n
