"""Standalone consistency: do all nodes hold the same assignment table?

In standalone mode every node runs its own allocator on its own copy of the
config file. If the copies differ (a node missed an rsync, a stale state file),
two nodes may disagree on which IP a Service has, and both announce. Each
heartbeat carries a short digest of the sender's table; this module compares.

Choice: when digests differ, the peers also send each other the table itself,
in chunks piggybacked on the heartbeats (one chunk per heartbeat per peer,
only while the digests differ). The receiver rebuilds the peer's table and
names the Services that differ, which a digest alone cannot do; the cost is a
few hundred bytes per heartbeat, only while something is wrong. A table larger
than `MAX_TABLE_CHUNKS` chunks is not sent (digests only: the alarm then lists
our Services), and a receiver keeps at most that many chunks per peer, so a
peer, or a forged packet, cannot make us hold more than 256 KiB each. A mismatch is
reported only after it lasted `grace_seconds` (longer than a reload takes on
every node), so a rolling reload does not raise an alarm.

Pure: time is passed in; no sockets.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from supervisor.allocating.results import Assignment
from supervisor.config.model import ServiceKey
from supervisor.membership.codec import DIGEST_SIZE, MAX_CHUNK, MAX_TABLE_CHUNKS, NO_DIGEST, Chunk

DEFAULT_GRACE_SECONDS = 3.0


def table_lines(assignments: Iterable[Assignment]) -> tuple[str, ...]:
    """The canonical table: sorted `ns/name=ip,ip@pool` lines (IPs sorted too)."""
    lines = []
    for a in assignments:
        ips = ",".join(str(ip) for ip in sorted(a.ips, key=_ip_order))
        lines.append(f"{a.service}={ips}@{a.pool}")
    return tuple(sorted(lines))


def _ip_order(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int]:
    return ip.version, int(ip)


def table_digest(lines: Iterable[str]) -> bytes:
    """sha256 over the lines (newline-terminated), truncated to DIGEST_SIZE bytes."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode() + b"\n")
    return h.digest()[:DIGEST_SIZE]


def chunks_of(lines: tuple[str, ...]) -> tuple[Chunk, ...]:
    """Split the table into wire chunks. An empty table is one empty chunk; one too large for the wire, none."""
    data = "".join(line + "\n" for line in lines).encode()
    pieces = [data[i : i + MAX_CHUNK] for i in range(0, len(data), MAX_CHUNK)] or [b""]
    if len(pieces) > MAX_TABLE_CHUNKS:
        return ()
    return tuple(Chunk(index=i, count=len(pieces), data=p) for i, p in enumerate(pieces))


def parse_table(data: bytes) -> dict[str, str] | None:
    """`ns/name` -> `ips@pool`, or None when the bytes are not a table."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    table: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            return None
        table[key] = value
    return table


def differing(ours: dict[str, str], theirs: dict[str, str]) -> tuple[ServiceKey, ...]:
    """Services present on one side only, or with different IPs or pool."""
    keys = {k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
    return tuple(sorted(ServiceKey.parse(k) for k in keys))


@dataclass(slots=True, kw_only=True)
class _PeerView:
    digest: bytes = NO_DIGEST
    since: float | None = None  # when the digests started to differ
    pieces: dict[int, bytes] = field(default_factory=dict)
    pieces_for: bytes = NO_DIGEST  # the digest the pieces belong to
    table: dict[str, str] | None = None  # the peer's rebuilt table, for `digest`
    next_chunk: int = 0  # which of our chunks to send this peer next


class ConsistencyTracker:
    """Our table against each peer's digest (and, on mismatch, their table)."""

    def __init__(self, *, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self.grace_seconds = grace_seconds
        self.digest = NO_DIGEST
        self._lines: tuple[str, ...] = ()
        self._table: dict[str, str] = {}
        self._chunks: tuple[Chunk, ...] = ()
        self._peers: dict[str, _PeerView] = {}
        # The peers whose digest differs from ours now (`since` set): what
        # `mismatches` looks at, so a healthy cluster costs nothing per turn.
        self._differing: set[str] = set()

    def set_ours(self, lines: tuple[str, ...], now: float) -> None:
        self._lines = lines
        self.digest = table_digest(lines)
        self._table = parse_table("".join(line + "\n" for line in lines).encode()) or {}
        self._chunks = chunks_of(lines)
        for name, peer in self._peers.items():
            self._compare(name, peer, now)

    @property
    def too_large(self) -> bool:
        """Our table exceeds MAX_TABLE_CHUNKS: peers get our digest but not the table."""
        return bool(self._lines) and not self._chunks

    def set_peers(self, peers: Iterable[str]) -> None:
        wanted = set(peers)
        for gone in set(self._peers) - wanted:
            del self._peers[gone]
            self._differing.discard(gone)
        for new in wanted - set(self._peers):
            self._peers[new] = _PeerView()

    def peer_digest(self, peer: str) -> bytes:
        view = self._peers.get(peer)
        return view.digest if view else NO_DIGEST

    def heard(self, peer: str, digest: bytes, chunk: Chunk | None, now: float) -> None:
        view = self._peers.get(peer)
        if view is None:
            return
        if chunk is None and digest == view.digest:
            return  # nothing new (most heartbeats): _compare ran when either digest last changed
        if digest != view.digest:
            view.digest = digest
        self._compare(peer, view, now)
        if chunk is not None and view.since is not None:
            self._take_chunk(view, digest, chunk)

    @property
    def differing(self) -> AbstractSet[str]:
        """The peers whose digest differs from ours now: the only ones `chunk_for` gives chunks to."""
        return self._differing

    def chunk_for(self, peer: str) -> Chunk | None:
        """The next piece of our table to send `peer`, while our digests differ."""
        view = self._peers.get(peer)
        if view is None or view.since is None or not self._chunks or self.digest == NO_DIGEST:
            return None
        chunk = self._chunks[view.next_chunk % len(self._chunks)]
        view.next_chunk = (view.next_chunk + 1) % len(self._chunks)
        return chunk

    def mismatches(self, now: float) -> tuple[tuple[str, tuple[ServiceKey, ...]], ...]:
        """Peers whose digest has differed for longer than the grace, with the differing Services.

        Until the peer's table has arrived, the Services are ours (every one of
        them may differ); with it, exactly the ones that differ.
        """
        found = []
        for name in sorted(self._differing):
            view = self._peers[name]
            if view.since is None or now - view.since < self.grace_seconds:
                continue
            if view.table is not None:
                services = differing(self._table, view.table)
            else:
                services = tuple(sorted(ServiceKey.parse(k) for k in self._table))
            found.append((name, services))
        return tuple(found)

    def _compare(self, name: str, view: _PeerView, now: float) -> None:
        # An unknown digest (zeros: not allocated yet) is not a disagreement.
        differs = NO_DIGEST not in (view.digest, self.digest) and view.digest != self.digest
        if not differs:
            if view.since is not None or view.pieces:  # (runs per heartbeat: no new dict when nothing to clear)
                view.since, view.table, view.pieces = None, None, {}
                self._differing.discard(name)
        elif view.since is None:
            view.since = now
            self._differing.add(name)
        if view.table is not None and view.pieces_for != view.digest:
            view.table = None

    def _take_chunk(self, view: _PeerView, digest: bytes, chunk: Chunk) -> None:
        if chunk.count > MAX_TABLE_CHUNKS or chunk.index >= chunk.count:
            return  # decode() refuses these already; memory per peer must not depend on it
        if view.pieces_for != digest:
            view.pieces, view.pieces_for, view.table = {}, digest, None
        view.pieces[chunk.index] = chunk.data
        if view.table is None and len(view.pieces) == chunk.count and set(view.pieces) == set(range(chunk.count)):
            data = b"".join(view.pieces[i] for i in range(chunk.count))
            # Only a table that hashes to the digest it came with is believed.
            table = parse_table(data)
            if table is not None and table_digest(data.decode().splitlines()) == digest:
                view.table = table
