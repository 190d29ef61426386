"""The lab client's probe: connect to IP:port every few ms, note who answered.

Prints one line per attempt, `<monotonic seconds> <node name or ->`, so a
parent can follow it live; `outages()` turns such samples into the gaps a
user would have seen. Used by the demo, the failover tests and bench/failover.py.

    python -m supervisor.lab.probe --target 10.0.10.10:8080 --interval 0.01 --duration 5
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from dataclasses import dataclass


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


def attempt(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            data = conn.recv(64)
    except OSError:
        return None
    return data.decode(errors="replace").strip() or None


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
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        started = time.monotonic()
        who = attempt(host, int(port), args.timeout)
        sys.stdout.write(f"{started:.6f} {who or '-'}\n")
        sys.stdout.flush()
        rest = args.interval - (time.monotonic() - started)
        if rest > 0:
            time.sleep(rest)


if __name__ == "__main__":
    main()
