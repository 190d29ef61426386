"""One bounded receive turn on the heartbeat socket, and the drop counters it feeds.

Anyone on the LAN can send UDP to the heartbeat port without the key. The
loop must keep sending heartbeats and judging deadlines whatever arrives, so a
turn reads at most `TurnBudget.max_datagrams` datagrams and stops after
`TurnBudget.max_seconds` (whichever comes first); what is left waits for the
next turn, after the loop has ticked. Each datagram first goes through
`screen` (the source is a configured peer's address, the size and
magic/version are plausible), which costs a dict lookup and a slice, before
`handle` parses and authenticates it.

Drops are only counted here (a dict increment per datagram); the worker
reports the counts once a second (`Reporter.drops`), never one message per
datagram.

Pure apart from the two callables: the socket's recv and the clock are passed
in, so tests drive a turn with a fake socket and a fake clock
(tests/test_membership_receiving.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.membership.codec import DropReason, screen

log = logging.getLogger(__name__)

Recv = Callable[[], tuple[bytes, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnBudget:
    # 5 ms is under 2% of the default 0.35 s deadline, so a turn that used it
    # all still leaves the loop free to tick and send on time.
    max_datagrams: int = 512
    max_seconds: float = 0.005


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnResult:
    received: int
    # The budget ran out before the socket was empty: more is queued.
    cut_short: bool


class DropCounter:
    """Dropped datagrams by reason since the last `take`, with the last source and detail of each."""

    def __init__(self) -> None:
        self.counts: dict[DropReason, int] = {}
        self.last: dict[DropReason, tuple[Any, str]] = {}

    def add(self, reason: DropReason, source: Any, detail: str = "") -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.last[reason] = (source, detail)

    def take(self) -> tuple[dict[DropReason, int], dict[DropReason, tuple[Any, str]]]:
        """The counts and samples so far; starts counting from zero again."""
        counts, last = self.counts, self.last
        self.counts, self.last = {}, {}
        return counts, last


def receive_turn(
    recv: Recv,
    handle: Callable[[bytes, Any], None],
    *,
    screen: Callable[[bytes, Any], DropReason | None],
    drops: DropCounter,
    budget: TurnBudget,
    clock: Callable[[], float],
) -> TurnResult:
    """Read and handle datagrams until the socket is empty or the budget is spent."""
    start = clock()
    n = 0
    while n < budget.max_datagrams:
        # At least one datagram per turn, however slow the clock says we are.
        if n and clock() - start >= budget.max_seconds:
            return TurnResult(received=n, cut_short=True)
        try:
            data, source = recv()
        except (BlockingIOError, InterruptedError):
            return TurnResult(received=n, cut_short=False)
        except OSError as exc:
            # e.g. ECONNREFUSED from an earlier send's ICMP: nothing to read now.
            log.debug("membership.recv_failed error=%s", exc)
            return TurnResult(received=n, cut_short=False)
        n += 1
        reason = screen(data, source)
        if reason is not None:
            drops.add(reason, source)
            continue
        handle(data, source)
    return TurnResult(received=n, cut_short=True)


def source_screen(sources: frozenset[str]) -> Callable[[bytes, Any], DropReason | None]:
    """A `screen` that drops datagrams from anything but `sources` (peer IPs), then runs `codec.screen`."""

    def check(data: bytes, source: Any) -> DropReason | None:
        host = source[0]
        if host not in sources and host.partition("%")[0] not in sources:  # IPv6 link-local: fe80::1%eth0
            return DropReason.UNKNOWN_SOURCE
        return screen(data)

    return check
