"""supervisor.batchio: recvmmsg/sendmmsg on a socketpair(AF_UNIX, SOCK_DGRAM), addresses as pure bytes.

A datagram socketpair keeps datagram boundaries like UDP and touches no
network, so these run anywhere without a namespace.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from supervisor import batchio


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _read_all(receiver: batchio.Receiver, sock: socket.socket) -> list[list[bytes]]:
    batches = []
    while n := receiver.receive(sock):
        batches.append([bytes(receiver.data(i)) for i in range(n)])
    return batches


def test_one_call_reads_up_to_count_datagrams_with_their_boundaries(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sent = [bytes([i]) * (i + 1) for i in range(10)]
    for payload in sent:
        a.send(payload)
    receiver = batchio.Receiver(count=4, size=64)
    batches = _read_all(receiver, b)
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert [d for batch in batches for d in batch] == sent


def test_datagrams_is_every_slot_as_bytes_with_its_source(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    for payload in (b"one", b"two!", b"three"):
        a.send(payload)
    receiver = batchio.Receiver(count=2, size=64)
    assert receiver.receive(b, limit=5) == 2
    assert receiver.datagrams() == [(b"one", None), (b"two!", None)]
    assert receiver.receive(b, limit=1) == 1
    assert receiver.datagrams() == [(b"three", None)]
    assert receiver.receive(b) == 0
    assert receiver.datagrams() == []


def test_nothing_queued_is_zero_not_an_error(pair: tuple[socket.socket, socket.socket]) -> None:
    receiver = batchio.Receiver(count=8, size=64)
    assert receiver.receive(pair[1]) == 0
    assert receiver.received == 0


def test_lengths_and_truncation_per_slot(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.send(b"short")
    a.send(b"x" * 40)
    receiver = batchio.Receiver(count=4, size=16)
    assert receiver.receive(b) == 2
    assert (receiver.length(0), receiver.truncated(0), bytes(receiver.data(0))) == (5, False, b"short")
    assert (receiver.length(1), receiver.truncated(1), bytes(receiver.data(1))) == (16, True, b"x" * 16)


def test_a_slot_is_reused_and_a_shorter_datagram_is_not_padded_with_the_last(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    receiver = batchio.Receiver(count=1, size=32)
    a.send(b"a long first datagram")
    assert receiver.receive(b) == 1
    a.send(b"tiny")
    assert receiver.receive(b) == 1
    assert bytes(receiver.data(0)) == b"tiny"


def test_an_unnamed_peer_has_no_source(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.send(b"hello")
    receiver = batchio.Receiver()
    assert receiver.receive(b) == 1
    assert receiver.source(0) is None
    assert receiver.source_raw(0) == b""


def test_a_bad_descriptor_raises_like_recvfrom() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fd = b.fileno()
    a.close()
    b.close()
    with pytest.raises(OSError) as raised:
        batchio.Receiver().receive(fd)
    assert raised.value.errno == errno.EBADF


def test_sender_sends_more_than_one_batch_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    messages = [(f"message {i}".encode(), None) for i in range(11)]
    assert batchio.Sender(count=4, size=32).send(a, messages) == []
    assert [d for batch in _read_all(batchio.Receiver(count=64, size=32), b) for d in batch] == [m for m, _ in messages]


def test_sender_refuses_an_oversized_payload_before_sending_anything(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with pytest.raises(ValueError, match="33-byte datagram does not fit its 32-byte slot"):
        batchio.Sender(count=4, size=32).send(a, [(b"ok", None), (b"x" * 33, None)])
    assert batchio.Receiver().receive(b) == 0


def test_sender_reports_each_refused_message_and_goes_on(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.close()
    failed = batchio.Sender(count=2, size=32).send(a, [(b"one", None), (b"two", None), (b"three", None)])
    assert [i for i, _ in failed] == [0, 1, 2]
    assert all(isinstance(exc, OSError) and exc.errno for _, exc in failed)


def test_sender_reports_a_full_buffer_as_that_message_failing(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender = batchio.Sender(count=64, size=1024)
    failed = sender.send(a, [(b"x" * 1000, None)] * 2000)
    queued = sum(len(batch) for batch in _read_all(batchio.Receiver(count=64, size=1024), b))
    assert failed, "a 4 KiB send buffer cannot take 2 MB without the peer reading"
    assert {exc.errno for _, exc in failed} == {errno.EAGAIN}
    assert queued + len(failed) == 2000


def _native_family(family: int) -> bytes:
    return struct.pack("=H", family)


@pytest.mark.parametrize(
    ("address", "raw"),
    [
        pytest.param(("10.0.10.1", 7946),
                     _native_family(socket.AF_INET) + b"\x1f\x0a" + bytes([10, 0, 10, 1]) + bytes(8), id="ipv4"),
        pytest.param(("fd00::1", 7946, 0, 3),
                     _native_family(socket.AF_INET6) + b"\x1f\x0a" + bytes(4)
                     + socket.inet_pton(socket.AF_INET6, "fd00::1") + struct.pack("=I", 3), id="ipv6-scope"),
    ],
)  # fmt: skip
def test_addresses_encode_to_the_kernels_sockaddr_and_back(address: tuple[object, ...], raw: bytes) -> None:
    assert batchio.encode_address(address) == raw
    assert batchio.decode_address(raw) == address


def test_an_ipv6_address_without_flowinfo_and_scope_gets_zeros() -> None:
    assert batchio.decode_address(batchio.encode_address(("fd00::2", 1))) == ("fd00::2", 1, 0, 0)


def test_a_scoped_ipv6_address_gets_its_interfaces_index() -> None:
    assert batchio.decode_address(batchio.encode_address(("fe80::1%7", 1))) == ("fe80::1", 1, 0, 7)
    lo = socket.if_nametoindex("lo")
    assert batchio.decode_address(batchio.encode_address(("fe80::1%lo", 1))) == ("fe80::1", 1, 0, lo)


def test_packet_socket_addresses_decode_to_ifindex_protocol_and_hardware_address() -> None:
    raw = _native_family(socket.AF_PACKET) + struct.pack("!H", 0x0806) + struct.pack("=iHBB8s", 3, 1, 0, 6, b"\xaa" * 6)
    assert batchio.decode_address(raw) == (3, 0x0806, 0, 1, b"\xaa" * 6)


def test_an_unknown_family_is_given_raw() -> None:
    raw = _native_family(socket.AF_UNIX) + b"/tmp/x\0"
    assert batchio.decode_address(raw) == raw


def test_bad_sizes_are_refused_with_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"count \(0\) and size \(64\)"):
        batchio.Receiver(count=0, size=64)


def test_packed_gives_one_copy_whose_slots_hold_each_datagram_up_to_its_length(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    receiver = batchio.Receiver(count=4, size=8)
    for payload in (b"abcdefgh", b"ijklmnop", b"qrstuvwx"):
        a.send(payload)
    assert receiver.receive(b) == 3  # fills every slot, so the next read's leftovers are known
    a.send(b"xy")
    a.send(b"0123456789")  # longer than a slot: cut to its size
    assert receiver.receive(b) == 2
    block, lengths = receiver.packed()
    assert list(lengths) == [2, 8]
    assert len(block) == 2 * 8
    assert [block[i * 8 : i * 8 + length] for i, length in enumerate(lengths)] == [b"xy", b"01234567"]
    assert block[2:8] == b"cdefgh", "past a datagram's length: an earlier datagram's bytes, as documented"


def test_send_packed_cuts_a_block_into_datagrams_of_the_slot_size(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sender = batchio.Sender(count=3, size=4)
    payloads = [bytes([i]) * 4 for i in range(7)]  # more than one call's worth
    assert sender.send_packed(a, b"".join(payloads)) == []
    got = []
    while True:
        try:
            got.append(b.recv(64))
        except BlockingIOError:
            break
    assert got == payloads


def test_send_packed_after_send_sends_no_address_and_full_slots(pair: tuple[socket.socket, socket.socket]) -> None:
    """send() leaves per-slot lengths and addresses behind; send_packed must not reuse them."""
    a, b = pair
    sender = batchio.Sender(count=2, size=4)
    assert sender.send(a, [(b"x", None), (b"y", None)]) == []
    assert [b.recv(64), b.recv(64)] == [b"x", b"y"]
    assert sender.send_packed(a, b"abcdefgh") == []
    assert [b.recv(64), b.recv(64)] == [b"abcd", b"efgh"]


def test_send_packed_refuses_a_block_that_is_not_whole_datagrams(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with pytest.raises(ValueError, match="not a whole number of 4-byte datagrams"):
        batchio.Sender(count=2, size=4).send_packed(a, b"abcde")
    with pytest.raises(BlockingIOError):
        b.recv(64)


def test_send_packed_reports_refused_datagrams_by_their_number_in_the_block() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.close()  # every datagram is refused: the peer is gone
    try:
        failed = batchio.Sender(count=2, size=2).send_packed(a, b"aabbcc")
    finally:
        a.close()
    assert [index for index, _ in failed] == [0, 1, 2]
    assert all(isinstance(error, OSError) for _, error in failed)


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_arrivals_are_the_kernels_wall_clock_stamps(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp_pair
    assert batchio.enable_timestamps(a)
    receiver = batchio.Receiver(count=8, size=64, timestamps=True)
    # The kernel turns stamping on asynchronously for the first socket that asks (a work queue): until
    # then a datagram is stamped when it is read. Wait for a stamp taken on arrival.
    give_up = time.time() + 10.0
    while True:
        b.sendto(b"w", a.getsockname())
        time.sleep(0.02)
        read_at = time.time()
        assert receiver.receive(a) == 1
        if receiver.arrivals()[0] < read_at - 0.01:
            break
        assert time.time() < give_up, "the kernel never stamped a datagram on arrival"
    brackets = []
    for i in range(3):
        before = time.time()
        b.sendto(b"d%d" % i, a.getsockname())  # loopback: queued on `a` inside this call
        brackets.append((before, time.time()))
    time.sleep(0.02)
    assert receiver.receive(a) == 3
    stamps = receiver.arrivals()
    assert [d for d, _ in receiver.datagrams()] == [b"d0", b"d1", b"d2"]
    for stamp, (before, after) in zip(stamps, brackets, strict=True):
        assert before - 1e-6 <= stamp <= after + 1e-6
    assert stamps == sorted(stamps)


def test_no_arrivals_without_room_or_without_the_socket_option(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp_pair
    b.sendto(b"x", a.getsockname())
    stamped = batchio.Receiver(count=4, size=64, timestamps=True)
    assert stamped.receive(a) == 1 and stamped.arrivals() == [0.0]  # the socket was not asked for stamps
    batchio.enable_timestamps(a)
    b.sendto(b"y", a.getsockname())
    plain = batchio.Receiver(count=4, size=64)
    assert plain.receive(a) == 1 and plain.arrivals() == [0.0]  # no room for them
    b.sendto(b"z", a.getsockname())
    assert stamped.receive(a) == 1 and stamped.arrivals()[0] > 0.0
