"""The allowed silence: fixed, or 3 intervals plus a margin learnt from the peer's lateness."""

from __future__ import annotations

import pytest

from supervisor.config.model import MembershipSettings
from supervisor.membership.deadline import FLOOR_SECONDS, DeadlinePolicy, Jitter

ADAPTIVE = DeadlinePolicy(interval_seconds=0.1)


def feed(jitter: Jitter, arrivals: list[tuple[float, int]], *, policy: DeadlinePolicy = ADAPTIVE) -> float:
    """Heartbeats (arrival time, seq) of one incarnation; returns the last peak."""
    peak = 0.0
    for at, seq in arrivals:
        peak = jitter.heard(policy, incarnation=1, seq=seq, now=at)
    return peak


@pytest.mark.parametrize("peak", [0.0, 0.05, 10.0], ids=["on-time", "late", "very-late"])
def test_a_fixed_deadline_ignores_lateness(peak: float) -> None:
    policy = DeadlinePolicy(interval_seconds=0.1, fixed_seconds=0.35)
    assert policy.allowed(peak) == 0.35
    assert policy.shortest == policy.longest == 0.35
    assert not policy.adaptive


def test_an_on_time_peer_gets_three_intervals_and_the_floor() -> None:
    peak = feed(Jitter(), [(10.0 + i * 0.1, i + 1) for i in range(20)])
    assert peak == pytest.approx(0.0, abs=1e-9)
    assert ADAPTIVE.allowed(peak) == pytest.approx(0.3 + FLOOR_SECONDS)
    assert ADAPTIVE.shortest == pytest.approx(0.3 + FLOOR_SECONDS)


def test_lateness_widens_the_margin_by_twice_the_peak() -> None:
    # On time, then one heartbeat 40 ms late, then on time again (an early gap is not lateness).
    arrivals = [(10.0, 1), (10.1, 2), (10.2, 3), (10.34, 4), (10.4, 5), (10.5, 6)]
    peak = feed(Jitter(), arrivals)
    assert peak == pytest.approx(0.04, abs=1e-3)
    assert ADAPTIVE.allowed(peak) == pytest.approx(0.3 + FLOOR_SECONDS + 0.08, abs=2e-3)


def test_a_lost_datagram_is_not_lateness() -> None:
    # seq 3 never arrived: the 0.2 s gap is two scheduled intervals.
    peak = feed(Jitter(), [(10.0, 1), (10.1, 2), (10.3, 4), (10.4, 5)])
    assert peak == pytest.approx(0.0, abs=1e-9)


def test_a_restart_starts_the_gaps_afresh() -> None:
    jitter = Jitter()
    feed(jitter, [(10.0, 1), (10.1, 2)])
    # New incarnation, seq from 1 again, 5 s later: no gap to measure.
    assert jitter.heard(ADAPTIVE, incarnation=2, seq=1, now=15.1) == 0.0
    jitter.forget()
    assert jitter.heard(ADAPTIVE, incarnation=2, seq=9, now=20.0) == 0.0


def test_the_peak_decays_with_its_half_life() -> None:
    jitter = Jitter()
    peak = feed(jitter, [(10.0, 1), (10.15, 2)])
    assert peak == pytest.approx(0.05)
    assert jitter.current(ADAPTIVE, 10.15 + ADAPTIVE.half_life_seconds) == pytest.approx(0.025)
    # A smaller lateness later does not replace a larger recent one.
    assert feed(jitter, [(10.26, 3)]) == pytest.approx(0.05, rel=0.01)


def test_the_margin_is_capped() -> None:
    assert ADAPTIVE.cap_seconds == pytest.approx(0.4)
    assert ADAPTIVE.allowed(10.0) == pytest.approx(0.3 + ADAPTIVE.cap_seconds)
    assert ADAPTIVE.longest == pytest.approx(0.3 + ADAPTIVE.cap_seconds)


def test_at_keepalived_intervals_an_idle_peer_is_judged_before_vrrp_would() -> None:
    # VRRPv3 backup at priority 190: 3 adverts + (256 - 190)/256 of one.
    for interval in (0.1, 1.0):
        vrrp = 3 * interval + (256 - 190) / 256 * interval
        assert DeadlinePolicy(interval_seconds=interval).allowed(0.0) < vrrp


@pytest.mark.parametrize(
    ("peers", "interval"),
    [(0, 0.05), (2, 0.05), (50, 0.05), (100, 0.1), (250, 0.25)],
    ids=["alone", "3-nodes", "50-peers", "100-peers", "250-peers"],
)
def test_the_default_interval_grows_with_the_cluster_past_50_peers(peers: int, interval: float) -> None:
    assert MembershipSettings().interval_for(peers) == pytest.approx(interval)
    # A configured interval is used as it is, whatever the cluster's size.
    assert MembershipSettings(interval_seconds=0.3).interval_for(peers) == 0.3
