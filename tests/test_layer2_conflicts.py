"""The split-brain rule: the lower MAC keeps an IP, the higher yields while the keeper is heard."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.layer2.conflicts import (
    REASSERT_EVERY_SECONDS,
    REJOIN_GRACE_SECONDS,
    YIELD_HOLD_SECONDS,
    Conflicts,
    Outcome,
    Verdict,
    expire,
    observe,
    rejoined,
    retain,
    verdict,
)

VIP = ipaddress.ip_address("10.0.10.10")
LOW = bytes.fromhex("020000000001")
MID = bytes.fromhex("0200000000a1")
HIGH = bytes.fromhex("0200000000ff")
WALL = 1.7e9


def claim(c: Conflicts, *, ours: bytes = MID, theirs: bytes, now: float, interface: str = "eth0") -> Outcome:
    return observe(c, ip=VIP, interface=interface, our_mac=ours, their_mac=theirs, now=now, wall=WALL + now)


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        pytest.param(MID, HIGH, Verdict.KEEP, id="ours-lower-keeps"),
        pytest.param(MID, LOW, Verdict.YIELD, id="ours-higher-yields"),
        pytest.param(MID, MID, Verdict.KEEP, id="same-mac-is-ours"),
        pytest.param(bytes.fromhex("0a0000000000"), bytes.fromhex("09ffffffffff"), Verdict.YIELD, id="first-byte"),
    ],
)
def test_verdict_table(ours: bytes, theirs: bytes, expected: Verdict) -> None:
    assert verdict(ours, theirs) is expected


@given(st.binary(min_size=6, max_size=6), st.binary(min_size=6, max_size=6))
def test_for_any_two_macs_exactly_one_side_keeps(a: bytes, b: bytes) -> None:
    keeps = [verdict(a, b) is Verdict.KEEP, verdict(b, a) is Verdict.KEEP]
    assert keeps.count(True) == (2 if a == b else 1)


@given(st.binary(min_size=6, max_size=6), st.binary(min_size=6, max_size=6), st.floats(0, 1e6))
def test_for_any_two_claimants_exactly_one_announces_after_both_hear_each_other(a: bytes, b: bytes,
                                                                               now: float) -> None:  # fmt: skip
    if a == b:
        return
    side_a = claim(Conflicts(), ours=a, theirs=b, now=now)
    side_b = claim(Conflicts(), ours=b, theirs=a, now=now)
    yielded = [bool(side_a.yielded), bool(side_b.yielded)]
    reasserted = [bool(side_a.reasserted), bool(side_b.reasserted)]
    assert yielded.count(True) == 1 and reasserted.count(True) == 1
    assert yielded != reasserted


def test_the_higher_mac_yields_and_stops_defending() -> None:
    kept = claim(Conflicts(), theirs=HIGH, now=0.0).conflicts
    assert (VIP, "eth0") in kept.defended
    out = claim(kept, theirs=LOW, now=1.0)
    assert [(y.to_mac, y.since) for y in out.yielded] == [(LOW, WALL + 1.0)]
    assert out.conflicts.defended == {}


def test_the_yield_lasts_while_the_keeper_is_heard_and_expires_after_the_hold() -> None:
    c = claim(Conflicts(), theirs=LOW, now=0.0).conflicts
    for t in (1.1, 2.2, 3.3, 4.4):  # the keeper's rounds
        assert expire(c, t).resumed == ()
        c = claim(c, theirs=LOW, now=t).conflicts
    assert expire(c, 4.4 + YIELD_HOLD_SECONDS - 0.01).resumed == ()
    out = expire(c, 4.4 + YIELD_HOLD_SECONDS + 0.01)
    assert [y.ip for y in out.resumed] == [VIP] and out.conflicts.yielded == {}


def test_a_higher_claim_does_not_hold_a_yield() -> None:
    c = claim(Conflicts(), theirs=LOW, now=0.0).conflicts
    c = claim(c, theirs=HIGH, now=3.0).conflicts
    assert expire(c, YIELD_HOLD_SECONDS + 0.01).resumed != ()


def test_reasserts_are_rate_limited_to_one_burst_per_window() -> None:
    out = claim(Conflicts(), theirs=HIGH, now=0.0)
    assert len(out.reasserted) == 1
    c = out.conflicts
    for t in (0.1, 1.0, REASSERT_EVERY_SECONDS - 0.01):
        out = claim(c, theirs=HIGH, now=t)
        assert out.reasserted == ()
        c = out.conflicts
    out = claim(c, theirs=HIGH, now=REASSERT_EVERY_SECONDS)
    assert len(out.reasserted) == 1 and out.reasserted[0].since == WALL, "the conflict's start is kept"


def test_interfaces_are_judged_apart() -> None:
    c = claim(Conflicts(), theirs=LOW, now=0.0, interface="eth0").conflicts
    out = claim(c, theirs=HIGH, now=0.0, interface="eth1")
    assert set(out.conflicts.yielded) == {(VIP, "eth0")} and set(out.conflicts.defended) == {(VIP, "eth1")}


def test_after_a_rejoin_nothing_is_yielded_during_the_grace() -> None:
    c = claim(Conflicts(), theirs=LOW, now=0.0).conflicts
    fresh = rejoined(10.0)
    assert fresh.yielded == {} and fresh.defended == {}
    out = claim(fresh, theirs=LOW, now=10.0 + REJOIN_GRACE_SECONDS - 0.01)
    assert out.yielded == () and len(out.reasserted) == 1
    assert claim(fresh, theirs=LOW, now=10.0 + REJOIN_GRACE_SECONDS).yielded != ()
    assert c.yielded, "the old state is untouched (pure)"


def test_a_defence_is_forgotten_a_burst_window_after_the_last_claim() -> None:
    c = claim(Conflicts(), theirs=HIGH, now=0.0).conflicts
    assert expire(c, REASSERT_EVERY_SECONDS - 0.01).conflicts.defended != {}
    assert expire(c, REASSERT_EVERY_SECONDS).conflicts.defended == {}


def test_retain_forgets_what_the_election_no_longer_gives() -> None:
    c = claim(Conflicts(), theirs=LOW, now=0.0, interface="eth0").conflicts
    c = claim(c, theirs=HIGH, now=0.0, interface="eth1").conflicts
    assert retain(c, [(VIP, "eth0"), (VIP, "eth1")]) is c
    kept = retain(c, [(VIP, "eth1")])
    assert kept.yielded == {} and set(kept.defended) == {(VIP, "eth1")}
