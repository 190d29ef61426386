"""The lab probe: its outage arithmetic (pure), and the probe against servers on loopback.

The demo and bench/failover.py rely on both."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

from supervisor.lab.probe import Outage, Sample, outages, parse_line, probe


def s(at: float, who: str | None) -> Sample:
    return Sample(at=at, served_by=who)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param([s(0, "n1"), s(1, "n1")], [], id="no-gap"),
        pytest.param([s(0, None), s(1, "n1")], [], id="startup-failures-are-not-an-outage"),
        pytest.param([s(0, "n1"), s(1, None), s(2, None), s(3, "n2")],
                     [Outage(start=1, end=3, before="n1", after="n2")], id="failover"),
        pytest.param([s(0, "n1"), s(1, None)], [], id="unfinished-gap-not-reported"),
        pytest.param([s(0, "n1"), s(1, "n2")], [Outage(start=1, end=1, before="n1", after="n2")],
                     id="seamless-handover-is-a-zero-gap"),
        pytest.param([s(0, "n1"), s(1, None), s(2, "n1"), s(3, None), s(5, "n2")],
                     [Outage(start=1, end=2, before="n1", after="n1"), Outage(start=3, end=5, before="n1", after="n2")],
                     id="two-gaps"),
    ],
)
def test_outages(samples: list[Sample], expected: list[Outage]) -> None:
    assert outages(samples) == expected


def test_parse_line() -> None:
    assert parse_line("12.5 n2") == Sample(at=12.5, served_by="n2")
    assert parse_line("12.5 -") == Sample(at=12.5, served_by=None)
    assert parse_line("garbage") is None
    assert parse_line("x y") is None


# -- the probe itself, against servers on loopback -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[tuple[socket.socket, int]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    yield listener, listener.getsockname()[1]
    listener.close()


def run_probe(port: int, *, interval: float, timeout: float, duration: float) -> list[Sample]:
    out = io.StringIO()
    probe("127.0.0.1", port, interval=interval, timeout=timeout, duration=duration, out=out)
    samples = [parse_line(line) for line in out.getvalue().splitlines()]
    assert all(sample is not None for sample in samples)
    return [sample for sample in samples if sample is not None]


def test_each_attempt_says_who_answered_in_the_order_they_started(server: tuple[socket.socket, int]) -> None:
    listener, port = server
    stop = threading.Event()

    def answer() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"n1\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        samples = run_probe(port, interval=0.01, timeout=1.0, duration=0.3)
    finally:
        stop.set()
        thread.join()
    assert samples and {sample.served_by for sample in samples} == {"n1"}
    assert [sample.at for sample in samples] == sorted(sample.at for sample in samples)


def test_attempts_that_hang_do_not_hold_up_the_next_ones(server: tuple[socket.socket, int]) -> None:
    """A server that never answers (the kernel completes the handshake; nobody sends): every attempt
    waits out its timeout, yet a new one starts every interval, so an outage is seen to the interval,
    not to the timeout."""
    _, port = server
    samples = run_probe(port, interval=0.01, timeout=0.2, duration=0.6)
    assert {sample.served_by for sample in samples} == {None}
    # One at a time this would be at most 0.6 / 0.2 = 3 attempts.
    assert len(samples) >= 10


def test_a_refused_connect_is_a_failed_attempt_at_once() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connects are refused
        samples = run_probe(port, interval=0.01, timeout=5.0, duration=0.1)
    assert samples and {sample.served_by for sample in samples} == {None}
