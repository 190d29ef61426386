"""Assignment digests and the table exchange that names the differing Services."""

from __future__ import annotations

import hashlib
import ipaddress

from supervisor.allocating.results import Assignment
from supervisor.config.model import ServiceKey
from supervisor.membership.consistency import (
    ConsistencyTracker,
    chunks_of,
    table_digest,
    table_lines,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def svc(text: str) -> ServiceKey:
    return ServiceKey.parse(text)


def assign(key: str, *ips: str, pool: str = "p") -> Assignment:
    return Assignment(service=svc(key), ips=tuple(ipaddress.ip_address(i) for i in ips), pool=pool)


def test_table_lines_are_canonical() -> None:
    a = [assign("b/web", "2001:db8::1", "10.0.0.2"), assign("a/db", "10.0.0.1", pool="q")]
    b = [assign("a/db", "10.0.0.1", pool="q"), assign("b/web", "10.0.0.2", "2001:db8::1")]
    assert table_lines(a) == table_lines(b) == ("a/db=10.0.0.1@q", "b/web=10.0.0.2,2001:db8::1@p")


def test_digest_is_truncated_sha256_of_the_lines() -> None:
    lines = ("a/db=10.0.0.1@q",)
    assert table_digest(lines) == hashlib.sha256(b"a/db=10.0.0.1@q\n").digest()[:16]
    assert table_digest(()) != table_digest(lines)


def test_large_tables_split_into_bounded_chunks() -> None:
    lines = table_lines(assign(f"ns/s{i}", f"10.0.{i // 250}.{i % 250}") for i in range(200))
    chunks = chunks_of(lines)
    assert len(chunks) > 1
    assert all(len(c.data) <= 1024 and c.count == len(chunks) for c in chunks)
    assert b"".join(c.data for c in chunks).decode().splitlines() == list(lines)


def exchange(ours: ConsistencyTracker, theirs: ConsistencyTracker, now: float, rounds: int = 20) -> None:
    """Both sides heartbeat each other `rounds` times, with chunks when asked."""
    for i in range(rounds):
        t = now + i * 0.1
        ours.heard("b", theirs.digest, theirs.chunk_for("a"), t)
        theirs.heard("a", ours.digest, ours.chunk_for("b"), t)


def pair(ours: list[Assignment], theirs: list[Assignment]) -> tuple[ConsistencyTracker, ConsistencyTracker]:
    a, b = ConsistencyTracker(grace_seconds=3.0), ConsistencyTracker(grace_seconds=3.0)
    a.set_peers(["b"])
    b.set_peers(["a"])
    a.set_ours(table_lines(ours), 0.0)
    b.set_ours(table_lines(theirs), 0.0)
    return a, b


def test_equal_tables_never_mismatch_and_send_no_chunks() -> None:
    a, b = pair([assign("x/web", "10.0.0.1")], [assign("x/web", "10.0.0.1")])
    exchange(a, b, 0.0, rounds=60)
    assert a.mismatches(10.0) == () and b.mismatches(10.0) == ()
    assert a.chunk_for("b") is None


def test_a_mismatch_is_reported_after_the_grace_with_the_differing_services() -> None:
    common = assign("x/same", "10.0.0.9")
    a, b = pair(
        [common, assign("x/web", "10.0.0.1"), assign("x/only-a", "10.0.0.3")],
        [common, assign("x/web", "10.0.0.2"), assign("x/only-b", "10.0.0.4")],
    )
    exchange(a, b, 0.0, rounds=10)
    assert a.mismatches(2.9) == ()  # within the grace: a reload may be under way
    expected = (svc("x/only-a"), svc("x/only-b"), svc("x/web"))
    assert a.mismatches(3.0) == (("b", expected),)
    assert b.mismatches(3.0) == (("a", expected),)


def test_before_the_table_arrives_our_services_are_named() -> None:
    a, b = pair([assign("x/web", "10.0.0.1")], [assign("x/web", "10.0.0.2")])
    a.heard("b", b.digest, None, 0.0)  # digest only, no chunk yet
    assert a.mismatches(5.0) == (("b", (svc("x/web"),)),)


def test_a_short_reload_window_is_not_reported() -> None:
    a, b = pair([assign("x/web", "10.0.0.1")], [assign("x/web", "10.0.0.2")])
    exchange(a, b, 0.0, rounds=10)
    b.set_ours(table_lines([assign("x/web", "10.0.0.1")]), 1.0)  # b reloaded and now agrees
    exchange(a, b, 1.0, rounds=10)
    assert a.mismatches(10.0) == ()


def test_unknown_digest_is_not_a_mismatch() -> None:
    a = ConsistencyTracker(grace_seconds=0.0)
    a.set_peers(["b"])
    a.set_ours(table_lines([assign("x/web", "10.0.0.1")]), 0.0)
    a.heard("b", bytes(16), None, 0.0)  # b has not allocated yet
    assert a.mismatches(100.0) == ()


def test_a_table_that_does_not_match_its_digest_is_ignored() -> None:
    from supervisor.membership.codec import Chunk

    a, b = pair([assign("x/web", "10.0.0.1")], [assign("x/web", "10.0.0.2")])
    # Not the table the digest was computed over: if believed, it would name x/other.
    forged = Chunk(index=0, count=1, data=b"x/other=10.9.9.9@p\n")
    a.heard("b", b.digest, forged, 0.0)
    assert a.mismatches(5.0) == (("b", (svc("x/web"),)),)


def test_a_table_over_the_chunk_cap_is_sent_as_a_digest_only() -> None:
    from supervisor.membership.codec import MAX_CHUNK, MAX_TABLE_CHUNKS

    n = (MAX_TABLE_CHUNKS * MAX_CHUNK) // 40  # lines of ~45 bytes: more than the cap
    big = [assign(f"namespace-{i:06d}/service-{i:06d}", f"10.{i // 62500}.{i // 250 % 250}.{i % 250}")
           for i in range(n)]
    assert len("".join(line + "\n" for line in table_lines(big))) > MAX_TABLE_CHUNKS * MAX_CHUNK
    assert chunks_of(table_lines(big)) == ()
    a, b = pair(big, [assign("x/web", "10.0.0.2")])
    assert a.too_large and not b.too_large
    exchange(a, b, 0.0, rounds=10)
    assert a.chunk_for("b") is None and b.chunk_for("a") is not None
    # b still learns that the tables differ, from the digest: it names its own Services.
    assert b.mismatches(5.0) == (("a", (svc("x/web"),)),)


def test_what_a_peer_can_make_us_keep_is_bounded_by_the_chunk_cap() -> None:
    from supervisor.membership.codec import MAX_CHUNK, MAX_TABLE_CHUNKS, Chunk

    a = ConsistencyTracker(grace_seconds=0.0)
    a.set_peers(["b"])
    a.set_ours(table_lines([assign("x/web", "10.0.0.1")]), 0.0)
    digest = b"\x01" * 16
    for index in range(0, 65535, 7):  # a forger's chunks, as many indexes as the wire allows
        a.heard("b", digest, Chunk(index=index, count=65535, data=b"x" * MAX_CHUNK), 0.0)
    for index in range(MAX_TABLE_CHUNKS + 10):
        a.heard("b", digest, Chunk(index=index, count=MAX_TABLE_CHUNKS, data=b"x" * MAX_CHUNK), 0.0)
    view = a._peers["b"]
    assert len(view.pieces) <= MAX_TABLE_CHUNKS
    assert sum(len(p) for p in view.pieces.values()) <= MAX_TABLE_CHUNKS * MAX_CHUNK


def test_only_differing_peers_are_given_chunks() -> None:
    # The worker asks chunk_for only of the peers in `differing` (once per datagram sent otherwise).
    a, b = pair([assign("x/web", "10.0.0.1")], [assign("x/web", "10.0.0.2")])
    a.set_peers(["b", "c"])
    a.heard("c", a.digest, None, 0.0)  # c agrees with us
    exchange(a, b, 0.0, rounds=3)
    assert set(a.differing) == {"b"}
    assert a.chunk_for("b") is not None and a.chunk_for("c") is None
    b.set_ours(table_lines([assign("x/web", "10.0.0.1")]), 1.0)  # b converges
    exchange(a, b, 1.0, rounds=2)
    assert set(a.differing) == set() and a.chunk_for("b") is None
