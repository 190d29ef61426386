"""The free-address index: which addresses of a pool are taken, and the lowest free one.

MetalLB walks every address of a CIDR to find a free one, so a /8 or an IPv6
/64 pool is slow (or never finishes). Here a range never gets enumerated: each
`AddressRange` keeps the offsets in use as sorted, disjoint, inclusive
intervals, so "lowest free" is a look at the first interval plus a bisect, and
marking an offset is a bisect plus a merge with its neighbours. Allocation
mostly appends at the end of the first interval, which is O(1); the cost
depends on how fragmented the used space is, never on the size of the range.

`avoidBuggyIPs` (IPv4 `.0` and `.255`) is handled arithmetically: buggy offsets
are skipped when searching and subtracted from totals by counting, and an
interval absorbs the buggy addresses between itself and its neighbour, so a
search never has to hop over thousands of tiny gaps.

This module knows nothing about Services or sharing; it only counts addresses.
Nothing is ever released: the allocator rebuilds the index from scratch on
every run (it is a pure function of the config and the previous state).
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from dataclasses import dataclass

from supervisor.allocating.results import HUGE_RANGE, MAX_COUNT
from supervisor.config.model import AddressRange, IPAddress, IPAddressPool

# The longest run of consecutive buggy offsets: x.x.x.255 followed by x.x.y.0.
_MAX_BUGGY_RUN = 2


def _count_congruent(first: int, last: int, residue: int) -> int:
    """How many integers x in [first, last] have x % 256 == residue."""
    return (last - residue) // 256 - (first - 1 - residue) // 256


def buggy_count(first: int, last: int) -> int:
    """IPv4 addresses ending in .0 or .255 between two integers (inclusive)."""
    return _count_congruent(first, last, 0) + _count_congruent(first, last, 255)


def _make_ip(version: int, value: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


class RangeIndex:
    """The used offsets of one address range, as merged intervals."""

    __slots__ = ("_base", "_buggy", "_ends", "_starts", "range", "size", "total", "used")

    def __init__(self, address_range: AddressRange, *, avoid_buggy_ips: bool) -> None:
        self.range = address_range
        self._base = int(address_range.first)
        self.size = address_range.size
        self._buggy = avoid_buggy_ips and address_range.version == 4
        self.total = self.size - (buggy_count(self._base, int(address_range.last)) if self._buggy else 0)
        self.used = 0
        # Interval i covers offsets starts[i]..ends[i]; every offset inside is used
        # or buggy (never free), and two intervals are never separated by buggy
        # offsets alone (they would have been merged).
        self._starts: list[int] = []
        self._ends: list[int] = []

    def offset_of(self, ip: IPAddress) -> int | None:
        if ip not in self.range:
            return None
        return int(ip) - self._base

    def ip_at(self, offset: int) -> IPAddress:
        return _make_ip(self.range.version, self._base + offset)

    def int_at(self, offset: int) -> int:
        return self._base + offset

    def is_buggy(self, offset: int) -> bool:
        return self._buggy and (self._base + offset) & 0xFF in (0, 255)

    def is_used(self, offset: int) -> bool:
        """True when `offset` is taken (buggy offsets count as taken: never free)."""
        i = bisect_right(self._starts, offset) - 1
        return (i >= 0 and offset <= self._ends[i]) or self.is_buggy(offset)

    def _gap_is_buggy(self, after: int, before: int) -> bool:
        """True when every offset strictly between `after` and `before` is buggy."""
        gap = before - after - 1
        if gap <= 0:
            return True
        return gap <= _MAX_BUGGY_RUN and all(self.is_buggy(o) for o in range(after + 1, before))

    def mark(self, offset: int) -> None:
        """Take `offset` (inside the range); taking it twice, or a buggy one, does nothing."""
        if self.is_buggy(offset):
            return
        i = bisect_right(self._starts, offset) - 1
        if i >= 0 and offset <= self._ends[i]:
            return
        self.used += 1
        joins_left = i >= 0 and self._gap_is_buggy(self._ends[i], offset)
        joins_right = i + 1 < len(self._starts) and self._gap_is_buggy(offset, self._starts[i + 1])
        if joins_left and joins_right:
            self._ends[i] = self._ends[i + 1]
            del self._starts[i + 1]
            del self._ends[i + 1]
        elif joins_left:
            self._ends[i] = offset
        elif joins_right:
            self._starts[i + 1] = offset
        else:
            self._starts.insert(i + 1, offset)
            self._ends.insert(i + 1, offset)

    def lowest_free(self) -> int | None:
        """The lowest offset neither used nor buggy, or None when the range is full."""
        candidate = 0
        # Bounded: each step passes a buggy run (≤ 2) or a whole interval, and
        # after an interval only a buggy run can follow before a free offset.
        while candidate < self.size:
            if self.is_buggy(candidate):
                candidate += 1
                continue
            i = bisect_right(self._starts, candidate) - 1
            if i >= 0 and candidate <= self._ends[i]:
                candidate = self._ends[i] + 1
                continue
            return candidate
        return None


@dataclass(frozen=True, slots=True)
class Position:
    """Where an address sits in its pool's spec order: range index, then offset."""

    range_index: int
    offset: int

    def key(self) -> tuple[int, int]:
        return (self.range_index, self.offset)


class PoolIndex:
    """The free-address index of one pool: its ranges in spec order."""

    __slots__ = ("_cursor", "pool", "ranges")

    def __init__(self, pool: IPAddressPool) -> None:
        self.pool = pool
        self.ranges = [RangeIndex(r, avoid_buggy_ips=pool.avoid_buggy_ips) for r in pool.addresses]
        # Ranges only fill up during one run, so the first range of a family that
        # may still have room only moves forward: amortised O(1) over many pools' ranges.
        self._cursor = {4: 0, 6: 0}

    def families(self) -> frozenset[int]:
        return frozenset(r.range.version for r in self.ranges)

    def locate(self, ip: IPAddress) -> Position | None:
        """The position of `ip` in this pool, or None when outside it or buggy."""
        for index, rng in enumerate(self.ranges):
            offset = rng.offset_of(ip)
            if offset is not None:
                return None if rng.is_buggy(offset) else Position(index, offset)
        return None

    def ip_at(self, position: Position) -> IPAddress:
        return self.ranges[position.range_index].ip_at(position.offset)

    def int_at(self, position: Position) -> int:
        """The integer value of the address at `position` (no ipaddress object built)."""
        return self.ranges[position.range_index].int_at(position.offset)

    def mark(self, position: Position) -> None:
        self.ranges[position.range_index].mark(position.offset)

    def lowest_free(self, family: int) -> Position | None:
        """The first free address of `family` in spec order, or None when exhausted."""
        start = self._cursor[family]
        for index in range(start, len(self.ranges)):
            rng = self.ranges[index]
            if rng.range.version == family:
                offset = rng.lowest_free()
                if offset is not None:
                    return Position(index, offset)
            if index == self._cursor[family]:
                self._cursor[family] = index + 1
        return None

    def total(self, family: int) -> int:
        ranges = [r for r in self.ranges if r.range.version == family]
        if any(r.size >= HUGE_RANGE for r in ranges):
            return MAX_COUNT  # MetalLB's poolCount: such a range never runs out
        return sum(r.total for r in ranges)

    def used(self, family: int) -> int:
        return sum(r.used for r in self.ranges if r.range.version == family)
