"""The heartbeat wire format: round trips, authentication, replay window, garbage."""

from __future__ import annotations

import hmac
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.membership import codec
from supervisor.membership.codec import (
    MAX_CHUNK,
    MAX_PACKET,
    MAX_TABLE_CHUNKS,
    MIN_PACKET,
    Chunk,
    Dropped,
    DropReason,
    Heartbeat,
    HeartbeatWriter,
    PacketType,
    ReplayWindow,
    decode,
    encode,
    screen,
)

KEY = b"s3cret-membership-key"
KNOWN = frozenset({"a", "b", "c"})


def hb(**overrides: object) -> Heartbeat:
    fields: dict[str, object] = {
        "type": PacketType.HEARTBEAT,
        "sender": "a",
        "receiver": "b",
        "incarnation": 1_700_000_000_000_000_000,
        "seq": 7,
        "sent_at_ns": 1_700_000_000_123_456_789,
        "echo_incarnation": 42,
        "digest": bytes(range(16)),
    }
    fields.update(overrides)
    return Heartbeat(**fields)  # type: ignore[arg-type]


def dec(data: bytes, key: bytes | None = KEY, receiver: str = "b") -> Heartbeat | Dropped:
    return decode(data, key=key, receiver=receiver, known=KNOWN)


@pytest.mark.parametrize(
    "packet",
    [
        hb(),
        hb(type=PacketType.LEAVING),
        hb(chunk=Chunk(index=1, count=3, data=b"default/web=10.0.10.10@pool\n")),
        hb(chunk=Chunk(index=0, count=1, data=b"")),
        hb(digest=bytes(16), echo_incarnation=0),
    ],
    ids=["heartbeat", "leaving", "chunk", "empty-chunk", "no-digest"],
)
@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "insecure"])
def test_round_trip(packet: Heartbeat, key: bytes | None) -> None:
    assert dec(encode(packet, key), key=key) == packet


def test_unicode_node_names_round_trip() -> None:
    packet = hb(sender="nöde-1", receiver="b")
    assert decode(encode(packet, KEY), key=KEY, receiver="b", known=frozenset({"nöde-1"})) == packet


def reason(result: Heartbeat | Dropped) -> DropReason | None:
    return result.reason if isinstance(result, Dropped) else None


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("index", [5, 8, 12, 20, 30, 40, 50, -1], ids=lambda i: f"byte{i}")
def test_any_tampered_byte_is_rejected(index: int) -> None:
    result = dec(flip(encode(hb(), KEY), index))
    # Tampering the length fields makes the packet unparsable; anything else fails the MAC.
    assert reason(result) in {DropReason.BAD_MAC, DropReason.MALFORMED}
    assert not isinstance(result, Heartbeat)


def test_tampered_seq_is_bad_mac() -> None:
    data = encode(hb(seq=7), KEY)
    forged = data.replace((7).to_bytes(8, "big"), (8).to_bytes(8, "big"), 1)
    assert forged != data
    assert reason(dec(forged)) is DropReason.BAD_MAC


@pytest.mark.parametrize(
    ("sent_with", "read_with", "expected"),
    [
        (b"other-key", KEY, DropReason.BAD_MAC),
        (None, KEY, DropReason.BAD_MAC),  # a forged packet without a key
        (KEY, None, None),  # insecure receivers cannot check a MAC and accept
    ],
    ids=["wrong-key", "no-mac", "insecure-receiver"],
)
def test_authentication(sent_with: bytes | None, read_with: bytes | None, expected: DropReason | None) -> None:
    assert reason(dec(encode(hb(), sent_with), key=read_with)) is expected


@pytest.mark.parametrize(
    ("packet", "receiver", "expected"),
    [
        (hb(sender="mallory"), "b", DropReason.UNKNOWN_NODE),
        (hb(receiver="c"), "b", DropReason.WRONG_DESTINATION),
    ],
    ids=["unknown-sender", "for-another-node"],
)
def test_who(packet: Heartbeat, receiver: str, expected: DropReason) -> None:
    assert reason(dec(encode(packet, KEY), receiver=receiver)) is expected


def test_wrong_version() -> None:
    data = bytearray(encode(hb(), KEY))
    data[2] = 9
    assert reason(dec(bytes(data))) is DropReason.WRONG_VERSION


@pytest.mark.parametrize(
    "data",
    [b"", b"ML", b"XX\x01\x01\x01\x01\x01", b"ML\x01\x07\x01\x01\x01", b"ML\x01\x01\x80\x01\x01"],
    ids=["empty", "magic-only", "bad-magic", "bad-type", "bad-flags"],
)
def test_malformed(data: bytes) -> None:
    assert reason(dec(data)) is DropReason.MALFORMED


def test_truncated_and_trailing_bytes_are_malformed() -> None:
    data = encode(hb(), KEY)
    assert reason(dec(data[:-1])) in {DropReason.MALFORMED, DropReason.BAD_MAC}
    assert reason(dec(data + b"\x00")) in {DropReason.MALFORMED, DropReason.BAD_MAC}
    plain = encode(hb(), None)
    assert reason(dec(plain + b"x", key=None)) is DropReason.MALFORMED
    assert reason(dec(plain[:-3], key=None)) is DropReason.MALFORMED


def test_encode_refuses_oversized_chunk() -> None:
    with pytest.raises(ValueError, match="chunk"):
        encode(hb(chunk=Chunk(index=0, count=1, data=b"x" * (MAX_CHUNK + 1))), KEY)


@given(st.binary(max_size=600))
def test_garbage_never_raises(data: bytes) -> None:
    result = dec(data)
    assert isinstance(result, Dropped)


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=200))
def test_mutated_genuine_packets_never_raise(noise: bytes, at: int) -> None:
    data = encode(hb(chunk=Chunk(index=0, count=2, data=b"x=y\n")), KEY)
    at = min(at, len(data))
    mutated = data[:at] + noise + data[at + len(noise) :]
    result = dec(mutated)
    assert isinstance(result, (Heartbeat, Dropped))
    if mutated != data:
        assert isinstance(result, Dropped)
    # Insecure receivers must not crash either.
    assert isinstance(dec(mutated, key=None), (Heartbeat, Dropped))


# -- replay window ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "incarnation", "seq", "accepted"),
    [
        ([], 5, 1, True),
        ([(5, 1)], 5, 2, True),
        ([(5, 1)], 5, 1, False),  # the same packet again
        ([(5, 3)], 5, 2, False),  # older sequence (reordered or replayed)
        ([(5, 3)], 6, 0, True),  # the peer restarted: a newer incarnation
        ([(5, 3)], 4, 99, False),  # a previous life of the peer
        ([(5, 3), (6, 0)], 5, 4, False),  # once restarted, the old life is over
    ],
    ids=["first", "next", "duplicate", "older-seq", "newer-incarnation", "older-incarnation", "old-life"],
)
def test_replay_window(history: list[tuple[int, int]], incarnation: int, seq: int, accepted: bool) -> None:
    window = ReplayWindow()
    for inc, s in history:
        assert window.accept("a", inc, s) is None
    result = window.accept("a", incarnation, seq)
    assert (result is None) is accepted
    if result is not None:
        assert result.reason is DropReason.REPLAY


def test_replay_window_is_per_peer_and_check_does_not_record() -> None:
    window = ReplayWindow()
    assert window.accept("a", 5, 10) is None
    assert window.accept("b", 5, 1) is None  # b's numbers are its own
    assert window.check("c", 1, 1) is None
    assert window.check("c", 1, 1) is None  # check alone records nothing
    assert window.incarnation_of("a") == 5
    assert window.incarnation_of("c") == 0


def test_replayed_genuine_packet_is_rejected_end_to_end() -> None:
    window = ReplayWindow()
    data = encode(hb(seq=1), KEY)
    first = dec(data)
    assert isinstance(first, Heartbeat)
    assert window.accept(first.sender, first.incarnation, first.seq) is None
    again = dec(data)
    assert isinstance(again, Heartbeat)  # authentic bytes...
    dropped = window.accept(again.sender, again.incarnation, again.seq)
    assert dropped is not None and dropped.reason is DropReason.REPLAY  # ...but seen before


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=30))
def test_replay_window_accepts_a_strictly_increasing_sequence(packets: list[tuple[int, int]]) -> None:
    window = ReplayWindow()
    accepted = [p for p in packets if window.accept("a", *p) is None]
    assert accepted == sorted(set(accepted))
    assert all(x < y for x, y in itertools.pairwise(accepted))


def test_heartbeat_is_immutable() -> None:
    with pytest.raises(AttributeError):
        hb().seq = 3  # type: ignore[misc]


# -- screen: the free checks before any parse or HMAC (issue 15) -----------------

names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
heartbeats = st.builds(
    Heartbeat,
    type=st.sampled_from(PacketType),
    sender=names,
    receiver=names,
    incarnation=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    sent_at_ns=st.integers(0, 2**64 - 1),
    echo_incarnation=st.integers(0, 2**64 - 1),
    digest=st.binary(min_size=16, max_size=16),
    chunk=st.none() | st.builds(
        Chunk, index=st.just(0), count=st.integers(1, MAX_TABLE_CHUNKS), data=st.binary(max_size=MAX_CHUNK)
    ),
)


@given(heartbeats, st.sampled_from([KEY, None]))
def test_screen_never_drops_what_a_peer_can_send(packet: Heartbeat, key: bytes | None) -> None:
    data = encode(packet, key)
    assert MIN_PACKET <= len(data) <= MAX_PACKET
    assert screen(data) is None


@given(st.binary(max_size=2100))
def test_any_bytes_get_a_decision_from_screen_then_decode(data: bytes) -> None:
    """Whatever arrives: screen says drop (with a reason) or pass, and decode then gives a value."""
    reason = screen(data)
    assert reason is None or isinstance(reason, DropReason)
    if reason is None:
        assert isinstance(dec(data), (Heartbeat, Dropped))


@pytest.mark.parametrize(("data", "reason"), [
    (b"", DropReason.MALFORMED),
    (b"ML\x01" + bytes(MIN_PACKET - 4), DropReason.MALFORMED),  # one byte short
    (b"ML\x01" + bytes(MAX_PACKET - 2), DropReason.MALFORMED),  # one byte long
    (b"XX\x01" + bytes(MIN_PACKET), DropReason.MALFORMED),
    (b"ML\x02" + bytes(MIN_PACKET), DropReason.WRONG_VERSION),
])  # fmt: skip
def test_screen_drops(data: bytes, reason: DropReason) -> None:
    assert screen(data) is reason


def test_a_table_of_more_chunks_than_the_cap_is_neither_sent_nor_accepted() -> None:
    with pytest.raises(ValueError, match="chunks"):
        encode(hb(chunk=Chunk(index=0, count=MAX_TABLE_CHUNKS + 1, data=b"x")), KEY)
    # Built by hand as a forger would (count is a u16 on the wire): refused before the MAC is even checked.
    good = encode(hb(chunk=Chunk(index=0, count=MAX_TABLE_CHUNKS, data=b"x")), None)
    assert isinstance(dec(good, key=None), Heartbeat)
    at = good.index(bytes([0, 0, MAX_TABLE_CHUNKS >> 8, MAX_TABLE_CHUNKS & 0xFF, 0, 1]))
    forged = good[: at + 2] + (MAX_TABLE_CHUNKS + 1).to_bytes(2, "big") + good[at + 4 :]
    result = dec(forged, key=None)
    assert isinstance(result, Dropped) and result.detail == "bad chunk"


# -- HeartbeatWriter: the send path's encoder must say exactly what encode says ---------


@given(heartbeats, st.sampled_from([KEY, None]))
def test_the_writer_makes_the_same_bytes_as_encode(packet: Heartbeat, key: bytes | None) -> None:
    writer = HeartbeatWriter(packet.sender, key)
    for _ in range(2):  # the second time from the kept prefix
        data = writer.write(packet.type, packet.receiver, incarnation=packet.incarnation, seq=packet.seq,
                            sent_at_ns=packet.sent_at_ns, echo_incarnation=packet.echo_incarnation,
                            digest=packet.digest, chunk=packet.chunk)  # fmt: skip
        # With a key the token slot carries lane_token instead of the clock the caller passed.
        expected = packet if key is None else packet._replace(sent_at_ns=int.from_bytes(
            codec.lane_token(key, packet.sender.encode(), packet.receiver.encode(), packet.incarnation, packet.seq),
            "big"))
        assert data == encode(expected, key)


def test_the_writer_refuses_what_encode_refuses() -> None:
    with pytest.raises(ValueError, match="longer than"):
        HeartbeatWriter("x" * 254, KEY)
    writer = HeartbeatWriter("a", KEY)
    with pytest.raises(ValueError, match="longer than"):
        writer.write(PacketType.HEARTBEAT, "y" * 254, incarnation=1, seq=1, sent_at_ns=1, echo_incarnation=0,
                     digest=bytes(16))  # fmt: skip
    with pytest.raises(ValueError, match="digest must be 16 bytes"):
        writer.write(PacketType.HEARTBEAT, "b", incarnation=1, seq=1, sent_at_ns=1, echo_incarnation=0,
                     digest=b"short")  # fmt: skip



@given(key=st.binary(min_size=1, max_size=200), body=st.binary(max_size=2000))
def test_the_precomputed_mac_is_hmac_sha256(key: bytes, body: bytes) -> None:
    # Keys shorter than, equal to and longer than SHA-256's 64-byte block.
    assert codec._mac(key, body) == hmac.digest(key, body, "sha256")


# -- HeartbeatReader: the receive path's fast decode must say exactly what decode says ---------


def read_both(data: bytes, key: bytes | None, receiver: str = "b") -> tuple[Heartbeat | Dropped, Heartbeat | Dropped]:
    reader = codec.HeartbeatReader(receiver, key, KNOWN)
    return reader.read(data), decode(data, key=key, receiver=receiver, known=KNOWN)


@given(heartbeats, st.sampled_from([KEY, None]), st.sampled_from([KEY, b"another-key-of-the-same-size", None]))
def test_the_reader_gives_the_same_verdict_as_decode(packet: Heartbeat, sent_with: bytes | None,
                                                     read_with: bytes | None) -> None:
    fast, full = read_both(encode(packet, sent_with), read_with, receiver=packet.receiver)
    assert fast == full


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=120), st.sampled_from([KEY, None]))
def test_the_reader_gives_the_same_verdict_as_decode_on_mutated_heartbeats(noise: bytes, at: int,
                                                                          key: bytes | None) -> None:
    data = encode(hb(), KEY)  # a plain heartbeat from a known peer: the reader's fast path
    at = min(at, len(data))
    mutated = data[:at] + noise + data[at + len(noise) :]
    fast, full = read_both(mutated, key)
    assert fast == full
    if mutated != data and key is not None:
        assert isinstance(fast, Dropped)


@pytest.mark.parametrize(
    ("packet", "receiver"),
    [
        (hb(), "b"),  # the fast path
        (hb(sender="stranger"), "b"),  # a name no peer has: decode's unknown_node
        (hb(), "c"),  # addressed to another node
        (hb(type=PacketType.LEAVING), "b"),
        (hb(chunk=Chunk(index=0, count=1, data=b"x=y\n")), "b"),
    ],
    ids=["heartbeat", "unknown-sender", "wrong-destination", "leaving", "chunk"],
)
@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "insecure"])
def test_the_reader_on_each_kind_of_datagram(packet: Heartbeat, receiver: str, key: bytes | None) -> None:
    fast, full = read_both(encode(packet, key), key, receiver=receiver)
    assert fast == full
    assert isinstance(fast, Heartbeat) == (packet.sender in KNOWN and packet.receiver == receiver)


def test_a_forged_heartbeat_on_the_fast_path_is_bad_mac() -> None:
    data = encode(hb(), KEY)
    forged = data[:-1] + bytes([data[-1] ^ 1])
    result = codec.HeartbeatReader("b", KEY, KNOWN).read(forged)
    assert isinstance(result, Dropped) and result.reason is DropReason.BAD_MAC


def test_a_plain_heartbeat_from_a_peer_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = codec.HeartbeatReader("b", KEY, KNOWN)

    def no_decode(*args: object, **kwargs: object) -> Dropped:
        raise AssertionError("decode called")

    monkeypatch.setattr(codec, "decode", no_decode)
    assert reader.read(encode(hb(), KEY)) == hb()
    with pytest.raises(AssertionError, match="decode called"):
        reader.read(encode(hb(type=PacketType.LEAVING), KEY))
