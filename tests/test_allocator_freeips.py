"""The free-address index against a brute-force model, and its arithmetic."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.allocating.freeips import PoolIndex, RangeIndex, buggy_count
from supervisor.config.model import AddressRange, IPAddressPool


def _range(first: str, last: str) -> AddressRange:
    a, b = ipaddress.ip_address(first), ipaddress.ip_address(last)
    return AddressRange(first=a, last=b, text=f"{a}-{b}")


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 2**32 - 1100),
    size=st.integers(1, 1000),
    buggy=st.booleans(),
    marks=st.lists(st.integers(0, 999), max_size=60),
    take_lowest=st.integers(0, 40),
)
def test_lowest_free_matches_brute_force(
    start: int, size: int, buggy: bool, marks: list[int], take_lowest: int
) -> None:
    r = AddressRange(first=ipaddress.IPv4Address(start), last=ipaddress.IPv4Address(start + size - 1), text="x")
    index = RangeIndex(r, avoid_buggy_ips=buggy)
    used: set[int] = set()

    def is_bug(o: int) -> bool:
        return buggy and (start + o) & 0xFF in (0, 255)

    def model_lowest() -> int | None:
        return next((o for o in range(size) if o not in used and not is_bug(o)), None)

    for mark in marks:
        if mark < size:
            index.mark(mark)  # a buggy offset is refused, a used one ignored
            if not is_bug(mark):
                used.add(mark)
        assert index.lowest_free() == model_lowest()
    for _ in range(take_lowest):
        lowest = index.lowest_free()
        assert lowest == model_lowest()
        if lowest is None:
            break
        index.mark(lowest)
        used.add(lowest)
    assert index.used == len(used)
    assert index.total == sum(1 for o in range(size) if not is_bug(o))
    for o in range(size):
        assert index.is_used(o) == (o in used or is_bug(o))


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        pytest.param(0, 255, 2, id="one-slash-24"),
        pytest.param(1, 254, 0, id="inside-one-slash-24"),
        pytest.param(255, 256, 2, id="across-a-boundary"),
        pytest.param(0, 2**24 - 1, 2 * 2**16, id="slash-8"),
        pytest.param(10, 10, 0, id="single"),
    ],
)
def test_buggy_count(first: int, last: int, expected: int) -> None:
    assert buggy_count(first, last) == expected


def test_pool_index_skips_full_ranges_and_other_family() -> None:
    ranges = (_range("10.0.0.1", "10.0.0.1"), _range("fd00::1", "fd00::2"), _range("10.0.0.9", "10.0.0.9"))
    pool = IPAddressPool(name="p", addresses=ranges)
    index = PoolIndex(pool)
    first = index.lowest_free(4)
    assert first is not None and index.ip_at(first) == ipaddress.ip_address("10.0.0.1")
    index.mark(first)
    second = index.lowest_free(4)
    assert second is not None and index.ip_at(second) == ipaddress.ip_address("10.0.0.9")
    index.mark(second)
    assert index.lowest_free(4) is None
    v6 = index.lowest_free(6)
    assert v6 is not None and index.ip_at(v6) == ipaddress.ip_address("fd00::1")
    assert (index.total(4), index.used(4), index.total(6), index.used(6)) == (2, 2, 2, 0)


def test_locate_refuses_buggy_and_outside() -> None:
    index = PoolIndex(IPAddressPool(name="p", addresses=(_range("10.0.0.0", "10.0.1.255"),), avoid_buggy_ips=True))
    assert index.locate(ipaddress.ip_address("10.0.0.255")) is None
    assert index.locate(ipaddress.ip_address("10.0.2.1")) is None
    assert index.locate(ipaddress.ip_address("fd00::1")) is None
    found = index.locate(ipaddress.ip_address("10.0.1.1"))
    assert found is not None and found.key() == (0, 257)


def test_fragmented_buggy_range_stays_one_interval() -> None:
    """Marking every usable address of a buggy-avoiding /16 merges across .255/.0 gaps."""
    index = RangeIndex(_range("10.0.0.0", "10.0.255.255"), avoid_buggy_ips=True)
    for o in range(0, 65536, 2):
        if not index.is_buggy(o):
            index.mark(o)
    for o in range(1, 65536, 2):
        if not index.is_buggy(o):
            index.mark(o)
    assert index.lowest_free() is None
    assert len(index._starts) == 1
