"""The lab client's probe: connect to IP:port every few ms, note who answered.

Prints one line per attempt, `<monotonic seconds the attempt started> <node
name or ->`, in the order the attempts started, so a parent can follow it
live; `outages()` turns such samples into the gaps a user would have seen.
Used by the demo, the failover tests and bench/failover.py.

An attempt starts every `--interval` whether the earlier ones have finished
or not (non-blocking connects, each with its own `--timeout`). One at a time,
an attempt to a dead owner held the probe for the whole timeout, so an
outage was only seen to the nearest 50 ms or so: every outage of one
failover comparison at a 0.1 s interval was 252, 302 or 353 ms, and the two
daemons' medians differed by where they fell among those steps.

    python -m supervisor.lab.probe --target 10.0.10.10:8080 --interval 0.01 --duration 5
"""

from __future__ import annotations

import argparse
import collections
import errno
import selectors
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    at: float
    served_by: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outage:
    """From the first failed attempt to the first success after it."""

    start: float
    end: float
    before: str | None
    after: str | None

    @property
    def seconds(self) -> float:
        return self.end - self.start


class _Attempt:
    """One connect to the target and the read of the name the server sends (non-blocking)."""

    def __init__(self, address: tuple[Any, ...], family: socket.AddressFamily, started: float, timeout: float) -> None:
        self.started, self.timeout = started, timeout
        self.deadline = started + timeout
        self.connected = False
        self.done = False
        self.who: str | None = None
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        code = self.sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            self.finish(None)

    def finish(self, who: str | None) -> None:
        self.who, self.done = who, True
        self.sock.close()

    def ready(self, now: float) -> None:
        """The socket is writable (connect finished) or readable (the name came)."""
        if not self.connected:
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.finish(None)
                return
            # Connected: the read gets its own timeout, as a blocking connect then recv would.
            self.connected, self.deadline = True, now + self.timeout
            return
        try:
            data = self.sock.recv(64)
        except OSError:
            self.finish(None)
            return
        self.finish(data.decode(errors="replace").strip() or None)


def probe(host: str, port: int, *, interval: float, timeout: float, duration: float, out: TextIO) -> None:
    """Start an attempt every `interval` for `duration` seconds; write each one's line once it and every
    earlier one has finished."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    selector = selectors.DefaultSelector()
    pending: collections.deque[_Attempt] = collections.deque()
    end = time.monotonic() + duration
    next_start = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_start and now < end:
            attempt = _Attempt(address, family, now, timeout)
            if not attempt.done:
                selector.register(attempt.sock, selectors.EVENT_WRITE, attempt)
            pending.append(attempt)
            # After a stall, go on from now rather than start a burst of attempts.
            next_start = max(next_start + interval, now)
        while pending and pending[0].done:
            first = pending.popleft()
            out.write(f"{first.started:.6f} {first.who or '-'}\n")
            out.flush()
        if not pending and now >= end:
            return
        wake = min([a.deadline for a in pending if not a.done] + ([next_start] if now < end else []))
        for key, _ in selector.select(max(0.0, wake - time.monotonic())):
            attempt = key.data
            selector.unregister(attempt.sock)
            attempt.ready(time.monotonic())
            if not attempt.done:
                selector.register(attempt.sock, selectors.EVENT_READ, attempt)
        now = time.monotonic()
        for attempt in pending:
            if not attempt.done and now >= attempt.deadline:
                selector.unregister(attempt.sock)
                attempt.finish(None)


def parse_line(line: str) -> Sample | None:
    parts = line.split()
    if len(parts) != 2:
        return None
    try:
        at = float(parts[0])
    except ValueError:
        return None
    return Sample(at=at, served_by=None if parts[1] == "-" else parts[1])


def outages(samples: list[Sample]) -> list[Outage]:
    """Every gap in service: a run of failed attempts between two successes.

    Failures before the first success are start-up, not an outage, and a run
    of failures at the very end has no end yet, so neither is reported.
    """
    found: list[Outage] = []
    last_ok: Sample | None = None
    first_fail: Sample | None = None
    for sample in samples:
        if sample.served_by is None:
            if last_ok is not None and first_fail is None:
                first_fail = sample
            continue
        if first_fail is not None and last_ok is not None:
            found.append(Outage(start=first_fail.at, end=sample.at, before=last_ok.served_by, after=sample.served_by))
        elif last_ok is not None and last_ok.served_by != sample.served_by:
            # The owner changed between two successive successes: zero gap.
            found.append(Outage(start=sample.at, end=sample.at, before=last_ok.served_by, after=sample.served_by))
        first_fail = None
        last_ok = sample
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="IP:PORT")
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=0.05)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    probe(host.strip("[]"), int(port), interval=args.interval, timeout=args.timeout, duration=args.duration,
          out=sys.stdout)

if __name__ == "__main__":
    main()
