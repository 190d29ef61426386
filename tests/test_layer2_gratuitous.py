"""The gratuitous timer: MetalLB's burst (at once, then every 1.1 s while < 5 s) and the opt-in refresh."""

from __future__ import annotations

import pytest

from plugins.layer2.gratuitous import GratuitousTimer


def rounds(timer: GratuitousTimer[str], until: float, step: float = 0.05) -> list[float]:
    fired = []
    now = 0.0
    while now <= until:
        if timer.due(now):
            fired.append(round(now, 2))
        now = round(now + step, 2)
    return fired


def test_burst_is_five_rounds_over_five_seconds() -> None:
    timer: GratuitousTimer[str] = GratuitousTimer()
    timer.start("ip", 0.0)
    assert rounds(timer, 20.0) == pytest.approx([0.0, 1.1, 2.2, 3.3, 4.4], abs=0.051)
    assert timer.active() == frozenset()


def test_refresh_keeps_going_after_the_burst() -> None:
    timer: GratuitousTimer[str] = GratuitousTimer(refresh=3.0)
    timer.start("ip", 0.0)
    assert rounds(timer, 14.0) == pytest.approx([0.0, 1.1, 2.2, 3.3, 4.4, 7.4, 10.4, 13.4], abs=0.051)


def test_turning_refresh_off_ends_it() -> None:
    timer: GratuitousTimer[str] = GratuitousTimer(refresh=3.0)
    timer.start("ip", 0.0)
    rounds(timer, 8.0)
    timer.set_refresh(0)
    assert timer.due(100.0) == ["ip"]
    assert timer.active() == frozenset()


def test_cancel_stops_a_burst_and_restart_begins_again() -> None:
    timer: GratuitousTimer[str] = GratuitousTimer()
    timer.start("a", 0.0)
    timer.start("b", 0.0)
    assert sorted(timer.due(0.0)) == ["a", "b"]
    timer.cancel("a")
    assert timer.due(1.1) == ["b"]
    timer.start("a", 2.0)
    assert timer.due(2.0) == ["a"]


@pytest.mark.parametrize("late", [2.0, 30.0], ids=["two-rounds-late", "far-too-late"])
def test_a_late_tick_fires_once_not_a_catch_up_storm(late: float) -> None:
    timer: GratuitousTimer[str] = GratuitousTimer(refresh=10.0)
    timer.start("ip", 0.0)
    timer.due(0.0)
    assert timer.due(late) == ["ip"]
    assert timer.due(late + 0.01) == []
