"""The heartbeat wire format, and the replay window that guards it.

One UDP datagram per heartbeat, unicast to each peer (so it names its
destination and can echo what the sender knows about the receiver):

    offset  size  field
    0       2     magic b"ML"
    2       1     version (1)
    3       1     type: 1 HEARTBEAT, 2 LEAVING
    4       1     flags: bit 0 AUTH (a MAC trails the packet), bit 1 CHUNK
    5       1     len(from), then 1 byte len(to)
    7       ...   from (UTF-8 node name), to (UTF-8 node name)
            8     incarnation: the sender's wall clock (ns) when it started
            8     seq: increases by one with every packet of this incarnation
            8     token: with a key, `lane_token` of (from, to, incarnation,
                  seq), which lets the receiver tell a live peer's next
                  heartbeats from forgeries before spending an HMAC on them
                  (receiving.Lanes); without a key, the sender's wall clock
                  (ns). Nodes before the token wrote their wall clock here
                  too, and no version ever read it, so the format is unchanged
            8     echo_incarnation: the receiver's incarnation as the sender last
                  accepted it (0: none) — lets a node whose clock stepped back
                  across a restart learn it must re-incarnate higher (see worker)
            16    assignment digest (truncated sha256; zeros: not known yet)
    if CHUNK: 2 index, 2 count, 2 length, then `length` bytes of the sender's
              assignment table (sent only while digests differ, see consistency);
              count is at most MAX_TABLE_CHUNKS
    if AUTH:  32  HMAC-SHA256(key, every byte before it)

Proof of life: the detector counts a heartbeat only when its echo_incarnation
is the receiver's *current* incarnation (see detector), so packets recorded
before the receiver's last restart prove nothing.

`decode` never raises: it returns a `Heartbeat` or a `Dropped` reason, the way
MetalLB's code returns "notOwner" instead of erroring. `screen` is the cheap
part of it (length, magic, version) that the receive turn runs on every
datagram before anything costs a parse or an HMAC, and `echo_field` reads the
echo without parsing (see receiving.Screen). Replay protection needs
memory, so it lives in `ReplayWindow`, which the detector owns.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

MAGIC = b"ML"
VERSION = 1
MAC_SIZE = 32
DIGEST_SIZE = 16
NO_DIGEST = bytes(DIGEST_SIZE)
# Table chunks stay well under a 1500-byte MTU with the header and MAC around them.
MAX_CHUNK = 1024
MAX_NAME = 253  # a Kubernetes node name is a DNS subdomain: at most 253 bytes
# A peer's table is at most this many chunks (256 KiB, ~5,000 Services): what a
# receiver keeps per peer is bounded by it (u16 would allow 64 MiB).
MAX_TABLE_CHUNKS = 256

_PREFIX = struct.Struct("!2sBBBBB")
_FIXED = struct.Struct(f"!QQQQ{DIGEST_SIZE}s")
_CHUNK = struct.Struct("!HHH")
_FLAG_AUTH = 0x01
_FLAG_CHUNK = 0x02
_MAGIC_VERSION = MAGIC + bytes([VERSION])
# The smallest and largest datagram this version can produce (a one-byte name each way at least).
MIN_PACKET = _PREFIX.size + 2 + _FIXED.size
MAX_PACKET = _PREFIX.size + 2 * MAX_NAME + _FIXED.size + _CHUNK.size + MAX_CHUNK + MAC_SIZE


class PacketType(enum.IntEnum):
    HEARTBEAT = 1
    LEAVING = 2


_TYPES = {int(t): t for t in PacketType}  # a dict lookup: PacketType(n) costs a call per datagram


class DropReason(enum.Enum):
    """Why a datagram was not accepted; the value is the metric label."""

    MALFORMED = "malformed"
    WRONG_VERSION = "wrong_version"
    BAD_MAC = "bad_mac"
    UNKNOWN_NODE = "unknown_node"
    WRONG_DESTINATION = "wrong_destination"
    REPLAY = "replay"
    # Authentic and fresh, but it does not echo our current incarnation: sent
    # before the peer heard this run of ours (normal once after a restart) or
    # recorded before it and played again. Not proof of life.
    STALE_ECHO = "stale_echo"
    # The source address is no configured peer's (checked before any parsing).
    UNKNOWN_SOURCE = "unknown_source"
    # Echoes our incarnation and claims a peer whose heartbeats carry tokens,
    # but not the token of its next ones (receiving.Lanes): refused before the
    # HMAC, past a small allowance a second.
    BAD_TOKEN = "bad_token"
    # Never read: refused by the socket filter or the receive buffer was full
    # (the kernel counts both as the socket's drops; see membership/sockfilter).
    KERNEL = "kernel"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped:
    reason: DropReason
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One piece of the sender's assignment table (canonical lines, UTF-8)."""

    index: int
    count: int
    data: bytes


class Heartbeat(NamedTuple):
    """One decoded (or to be encoded) datagram.

    A NamedTuple rather than a frozen dataclass: one is built per datagram
    received (2,500 a second at 250 peers), and a frozen dataclass costs
    several times as much to construct (bench/membership_scale.py). Still
    immutable; build it with keywords.
    """

    type: PacketType
    sender: str
    receiver: str
    incarnation: int
    seq: int
    # The token's slot on the wire: HeartbeatWriter fills it with `lane_token`
    # when keyed, the wall clock otherwise; `encode` writes what it is given.
    sent_at_ns: int
    echo_incarnation: int = 0
    digest: bytes = NO_DIGEST
    chunk: Chunk | None = None

    @property
    def leaving(self) -> bool:
        return self.type is PacketType.LEAVING


def encode(hb: Heartbeat, key: bytes | None) -> bytes:
    """Serialise `hb`; with a key, append its HMAC-SHA256. `key=None` is insecure mode."""
    sender, receiver = hb.sender.encode(), hb.receiver.encode()
    if len(sender) > MAX_NAME or len(receiver) > MAX_NAME:
        raise ValueError(f"node name longer than {MAX_NAME} bytes: {hb.sender!r} / {hb.receiver!r}")
    if len(hb.digest) != DIGEST_SIZE:
        raise ValueError(f"digest must be {DIGEST_SIZE} bytes, got {len(hb.digest)}")
    flags = (_FLAG_AUTH if key is not None else 0) | (_FLAG_CHUNK if hb.chunk is not None else 0)
    parts = [
        _PREFIX.pack(MAGIC, VERSION, int(hb.type), flags, len(sender), len(receiver)),
        sender,
        receiver,
        _FIXED.pack(hb.incarnation, hb.seq, hb.sent_at_ns, hb.echo_incarnation, hb.digest),
    ]
    if hb.chunk is not None:
        if len(hb.chunk.data) > MAX_CHUNK:
            raise ValueError(f"chunk of {len(hb.chunk.data)} bytes exceeds {MAX_CHUNK}")
        if hb.chunk.count > MAX_TABLE_CHUNKS:
            raise ValueError(f"a table of {hb.chunk.count} chunks exceeds {MAX_TABLE_CHUNKS}")
        parts += [_CHUNK.pack(hb.chunk.index, hb.chunk.count, len(hb.chunk.data)), hb.chunk.data]
    body = b"".join(parts)
    if key is None:
        return body
    return body + _mac(key, body)


TOKEN_SIZE = 8
_LANE = b"metalloid lane token\0"  # a heartbeat body starts with b"ML": the two MAC inputs never collide
_INCARNATION_SEQ = struct.Struct("!QQ")


def lane_token(key: bytes, sender: bytes, receiver: bytes, incarnation: int, seq: int) -> bytes:
    """The token a keyed heartbeat carries: HMAC-SHA256(key, names, incarnation, seq), first 8 bytes.

    Unlike everything else in a heartbeat, it cannot be predicted without the
    key, yet the receiver can compute it before the datagram arrives (it knows
    the sender's incarnation and the next sequence numbers), so checking it is
    a dict lookup. An attacker who sees the heartbeats sees the tokens already
    used, never the next one (receiving.Lanes; docs/failover.md, "Floods").
    """
    names = bytes([len(sender)]) + sender + bytes([len(receiver)]) + receiver
    return _mac(key, _LANE + names + _INCARNATION_SEQ.pack(incarnation, seq))[:TOKEN_SIZE]


def lane_fields(data: bytes) -> tuple[bytes, int, int, bytes]:
    """(sender name, incarnation, seq, token) of a datagram long enough to carry an echo (see `echo_field`)."""
    at = _PREFIX.size + data[5]
    incarnation, seq = _INCARNATION_SEQ.unpack_from(data, at + data[6])
    token = data[at + data[6] + 16 : at + data[6] + 16 + TOKEN_SIZE]
    return data[_PREFIX.size : at], incarnation, seq, token


_BLOCK = 64  # SHA-256's block size, HMAC's key pad length (RFC 2104)


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states that have already absorbed key XOR ipad and key XOR opad (RFC 2104).

    HMAC's key set-up done once per key, not per datagram: copying two hash
    states is several times cheaper than hmac.digest() or a copy of an
    hmac.HMAC (tests/test_membership_codec.py checks it equals hmac.digest).
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key))


def _mac(key: bytes, body: bytes) -> bytes:
    """HMAC-SHA256(key, body)."""
    inner_keyed, outer_keyed = _keyed(key)
    inner = inner_keyed.copy()
    inner.update(body)
    outer = outer_keyed.copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


class HeartbeatWriter:
    """This node's heartbeats, byte for byte what `encode` makes, without building a `Heartbeat` per datagram.

    The worker sends every peer its own datagram every interval (2,500 a
    second at 250 peers); the part that depends only on the sender, the
    receiver and the flags is packed once per receiver and kept (the worker
    makes a new writer with each config, so removed peers' go with it).
    """

    def __init__(self, sender: str, key: bytes | None) -> None:
        self.sender = sender.encode()
        if len(self.sender) > MAX_NAME:
            raise ValueError(f"node name longer than {MAX_NAME} bytes: {sender!r}")
        self.key = key
        self._prefixes: dict[tuple[str, int, int], bytes] = {}

    def write(
        self,
        ptype: PacketType,
        receiver: str,
        *,
        incarnation: int,
        seq: int,
        sent_at_ns: int,
        echo_incarnation: int,
        digest: bytes,
        chunk: Chunk | None = None,
    ) -> bytes:
        """The datagram for `receiver`; with a key its token slot carries `lane_token`, not `sent_at_ns`."""
        if self.key is not None:
            token = lane_token(self.key, self.sender, receiver.encode(), incarnation, seq)
            sent_at_ns = int.from_bytes(token, "big")
        if chunk is not None:
            # Rare (only while tables differ): the general path checks the chunk's bounds.
            hb = Heartbeat(type=ptype, sender=self.sender.decode(), receiver=receiver, incarnation=incarnation,
                           seq=seq, sent_at_ns=sent_at_ns, echo_incarnation=echo_incarnation, digest=digest,
                           chunk=chunk)  # fmt: skip
            return encode(hb, self.key)
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"digest must be {DIGEST_SIZE} bytes, got {len(digest)}")
        flags = _FLAG_AUTH if self.key is not None else 0
        prefix = self._prefixes.get((receiver, ptype, flags))
        if prefix is None:
            name = receiver.encode()
            if len(name) > MAX_NAME:
                raise ValueError(f"node name longer than {MAX_NAME} bytes: {receiver!r}")
            prefix = _PREFIX.pack(MAGIC, VERSION, int(ptype), flags, len(self.sender), len(name)) + self.sender + name
            self._prefixes[(receiver, ptype, flags)] = prefix
        body = prefix + _FIXED.pack(incarnation, seq, sent_at_ns, echo_incarnation, digest)
        return body if self.key is None else body + _mac(self.key, body)


def screen(data: bytes) -> DropReason | None:
    """The checks that cost nothing: size and magic/version. None: worth decoding."""
    if not MIN_PACKET <= len(data) <= MAX_PACKET:
        return DropReason.MALFORMED
    if data[:3] != _MAGIC_VERSION:
        return DropReason.MALFORMED if data[:2] != MAGIC else DropReason.WRONG_VERSION
    return None


def echo_field(data: bytes) -> bytes:
    """The raw echo_incarnation bytes of a datagram that passed `screen` (b"" if too short to have one)."""
    at = _PREFIX.size + data[5] + data[6] + 24  # after from, to, incarnation, seq, token
    return data[at : at + 8]


_MAC_MISMATCH = Dropped(reason=DropReason.BAD_MAC, detail="MAC does not match (different key?)")


def decode(data: bytes, *, key: bytes | None, receiver: str, known: frozenset[str] | set[str]) -> Heartbeat | Dropped:
    """Parse and authenticate one datagram addressed to node `receiver`.

    `key=None` is insecure mode: packets are accepted with or without a MAC
    (a MAC cannot be checked without the key). With a key, a packet without a
    valid MAC is `bad_mac`. `known` are the configured peer names.
    """
    if len(data) < _PREFIX.size:
        return Dropped(reason=DropReason.MALFORMED, detail="short packet")
    magic, version, ptype, flags, from_len, to_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        return Dropped(reason=DropReason.MALFORMED, detail="bad magic")
    if version != VERSION:
        return Dropped(reason=DropReason.WRONG_VERSION, detail=f"version {version}, this node speaks {VERSION}")
    if ptype not in _TYPES:
        return Dropped(reason=DropReason.MALFORMED, detail=f"unknown type {ptype}")
    if flags & ~(_FLAG_AUTH | _FLAG_CHUNK):
        return Dropped(reason=DropReason.MALFORMED, detail=f"unknown flags {flags:#x}")
    if key is not None:
        # The MAC covers everything before the last MAC_SIZE bytes, so it is
        # checked before any parsing: a forged packet costs one HMAC, no more.
        if not flags & _FLAG_AUTH:
            return Dropped(reason=DropReason.BAD_MAC, detail="no MAC (peer runs insecure?)")
        if len(data) <= MAC_SIZE or not hmac.compare_digest(_mac(key, data[:-MAC_SIZE]), data[-MAC_SIZE:]):
            return _MAC_MISMATCH
    parsed = _parse_body(data, ptype, flags, from_len, to_len)
    if isinstance(parsed, Dropped):
        return parsed
    hb, _ = parsed
    if hb.sender not in known:
        return Dropped(reason=DropReason.UNKNOWN_NODE, detail=f"sender {hb.sender!r} is not a configured node")
    if hb.receiver != receiver:
        return Dropped(reason=DropReason.WRONG_DESTINATION, detail=f"addressed to {hb.receiver!r}")
    return hb


def _parse_body(data: bytes, ptype: int, flags: int, from_len: int, to_len: int) -> tuple[Heartbeat, int] | Dropped:
    packet_type = _TYPES[ptype]  # decode() checked it
    pos = _PREFIX.size
    mac_size = MAC_SIZE if flags & _FLAG_AUTH else 0
    need = pos + from_len + to_len + _FIXED.size + mac_size
    if len(data) < need:
        return Dropped(reason=DropReason.MALFORMED, detail="truncated")
    try:
        sender = data[pos : pos + from_len].decode()
        receiver = data[pos + from_len : pos + from_len + to_len].decode()
    except UnicodeDecodeError:
        return Dropped(reason=DropReason.MALFORMED, detail="node name is not UTF-8")
    pos += from_len + to_len
    incarnation, seq, sent_at, echo, digest = _FIXED.unpack_from(data, pos)
    pos += _FIXED.size
    chunk = None
    if flags & _FLAG_CHUNK:
        if len(data) < pos + _CHUNK.size + mac_size:
            return Dropped(reason=DropReason.MALFORMED, detail="truncated chunk header")
        index, count, length = _CHUNK.unpack_from(data, pos)
        pos += _CHUNK.size
        if length > MAX_CHUNK or index >= count or count > MAX_TABLE_CHUNKS or len(data) < pos + length + mac_size:
            return Dropped(reason=DropReason.MALFORMED, detail="bad chunk")
        chunk = Chunk(index=index, count=count, data=bytes(data[pos : pos + length]))
        pos += length
    if len(data) != pos + mac_size:
        return Dropped(reason=DropReason.MALFORMED, detail="trailing bytes")
    hb = Heartbeat(
        type=packet_type,
        sender=sender,
        receiver=receiver,
        incarnation=incarnation,
        seq=seq,
        sent_at_ns=sent_at,
        echo_incarnation=echo,
        digest=bytes(digest),
        chunk=chunk,
    )
    return hb, pos


class HeartbeatReader:
    """`decode` for one receiver, the configured peers and the key, with the common datagram read faster.

    Nearly every datagram a node receives is a configured peer's plain
    heartbeat to it: type HEARTBEAT, our flags, no chunk. Everything before
    the counters is then the same bytes every time for that peer, so the
    reader keeps those prefixes (one per peer, built once per config) and a
    datagram that starts with one and has the size of a plain heartbeat needs
    only its MAC checked and the counters unpacked: no name decoding, no
    sender or receiver checks, the same verdict as `decode` (the MAC covers
    the prefix). Anything else (LEAVING, a chunk, another peer's name, junk)
    goes through `decode`. A forged datagram still costs one HMAC, no more.
    At 250 peers the fast path halved the receive path's CPU (BENCHMARKS.md,
    "Issue 16: membership at scale").
    """

    def __init__(self, receiver: str, key: bytes | None, known: frozenset[str]) -> None:
        self.receiver, self.key, self.known = receiver, key, known
        to = receiver.encode()
        flags = _FLAG_AUTH if key is not None else 0
        self._mac_size = MAC_SIZE if key is not None else 0
        self._senders: dict[bytes, str] = {}
        for peer in known:
            sender = peer.encode()
            if len(sender) <= MAX_NAME and len(to) <= MAX_NAME:
                prefix = _PREFIX.pack(MAGIC, VERSION, int(PacketType.HEARTBEAT), flags, len(sender), len(to))
                self._senders[prefix + sender + to] = peer

    def read(self, data: bytes) -> Heartbeat | Dropped:
        if len(data) > _PREFIX.size:
            end = _PREFIX.size + data[5] + data[6]
            sender = self._senders.get(data[:end])
            if sender is not None and len(data) == end + _FIXED.size + self._mac_size:
                key = self.key
                if key is not None and not hmac.compare_digest(_mac(key, data[:-MAC_SIZE]), data[-MAC_SIZE:]):
                    return _MAC_MISMATCH
                incarnation, seq, sent_at, echo, digest = _FIXED.unpack_from(data, end)
                # Positional: a NamedTuple built with keywords costs twice as much, per datagram.
                return Heartbeat(PacketType.HEARTBEAT, sender, self.receiver, incarnation, seq, sent_at, echo, digest)
        return decode(data, key=self.key, receiver=self.receiver, known=self.known)


class ReplayWindow:
    """Per-peer high-water mark of (incarnation, seq): nothing old gets in twice.

    A peer's packets are accepted only if they are newer than everything
    accepted before: a higher incarnation (the peer restarted), or the same
    incarnation with a higher sequence. An older incarnation is a replay of a
    previous life of the peer. Reordered packets count as replays too — with a
    100 ms heartbeat, the next packet makes up for a dropped one.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int]] = {}

    def check(self, peer: str, incarnation: int, seq: int) -> Dropped | None:
        """None when (incarnation, seq) is fresh for `peer`; does not record it."""
        last = self._seen.get(peer)
        if last is None:
            return None
        if incarnation < last[0]:
            return Dropped(
                reason=DropReason.REPLAY, detail=f"older incarnation {incarnation} < {last[0]} (clock stepped back?)"
            )
        if incarnation == last[0] and seq <= last[1]:
            return Dropped(reason=DropReason.REPLAY, detail=f"seq {seq} <= last seen {last[1]}")
        return None

    def accept(self, peer: str, incarnation: int, seq: int) -> Dropped | None:
        """Check and, when fresh, record. Returns the drop, or None when accepted."""
        last = self._seen.get(peer)
        # The fresh case inline (once per datagram received); `check` words the drops.
        if last is None or incarnation > last[0] or (incarnation == last[0] and seq > last[1]):
            self._seen[peer] = (incarnation, seq)
            return None
        return self.check(peer, incarnation, seq)

    def incarnation_of(self, peer: str) -> int:
        """The peer's incarnation as last accepted (0: never heard)."""
        return self._seen.get(peer, (0, 0))[0]

    def forget(self, peer: str) -> None:
        """Only for a peer removed from the config; a dead peer keeps its mark."""
        self._seen.pop(peer, None)
