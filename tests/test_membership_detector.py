"""The failure detector with a fake clock: deadlines, LEAVING, stalls, rejoin, replays."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.membership.codec import DropReason, Heartbeat, PacketType
from supervisor.membership.detector import DetectorSettings, FailureDetector, Transition

SETTINGS = DetectorSettings(interval_seconds=0.1, dead_after_seconds=0.35)
ME = 77  # the detector's own incarnation, which every heartbeat to it must echo


@dataclass
class FakeClock:
    now: float = 1000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Peer:
    """A peer that sends heartbeats with increasing sequence numbers."""

    name: str
    incarnation: int = 1
    seq: int = 0
    echo: int = ME
    sent: list[Heartbeat] = field(default_factory=list)

    def beat(self, ptype: PacketType = PacketType.HEARTBEAT) -> Heartbeat:
        self.seq += 1
        hb = Heartbeat(
            type=ptype, sender=self.name, receiver="me", incarnation=self.incarnation, seq=self.seq, sent_at_ns=0,
            echo_incarnation=self.echo,
        )
        self.sent.append(hb)
        return hb

    def restart(self) -> None:
        self.incarnation += 1
        self.seq = 0


def make(clock: FakeClock, peers: tuple[str, ...] = ("a", "b"), **kw: float) -> FailureDetector:
    settings = DetectorSettings(interval_seconds=0.1, dead_after_seconds=0.35, **kw)  # type: ignore[arg-type]
    return FailureDetector(settings, node_name="me", incarnation=ME, peers=frozenset(peers) | {"me"}, now=clock.now)


def run_for(
    det: FailureDetector, clock: FakeClock, seconds: float, talking: list[Peer], step: float = 0.1
) -> list[Transition]:
    """Advance in loop-sized steps; `talking` peers send one heartbeat per step."""
    changes: list[Transition] = []
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        clock.advance(min(step, end - clock.now))
        for p in talking:
            dropped, ch = det.receive(p.beat(), clock.now)
            assert dropped is None
            changes += ch
        changes += det.tick(clock.now)
    return changes


def test_self_is_always_alive_and_a_lone_node_is_not_isolated() -> None:
    clock = FakeClock()
    det = make(clock, peers=())
    run_for(det, clock, 5.0, [])
    assert det.alive() == {"me"}
    assert not det.isolated()


def test_peers_are_presumed_alive_during_the_startup_grace() -> None:
    clock = FakeClock()
    det = make(clock)
    assert det.alive() == {"me", "a", "b"}
    # 2 x dead_after = 0.7 s of grace: silent peers survive 0.6 s...
    assert run_for(det, clock, 0.6, []) == []
    # ...and die when it ends.
    changes = run_for(det, clock, 0.2, [])
    assert {(t.peer, t.alive, t.reason) for t in changes} == {("a", False, "deadline"), ("b", False, "deadline")}
    assert det.isolated()


@pytest.mark.parametrize(
    ("silence", "dead"),
    [(0.2, False), (0.3, False), (0.4, True), (1.0, True)],
    ids=["2-intervals", "3-intervals", "past-deadline", "long"],
)
def test_death_after_the_deadline(silence: float, dead: bool) -> None:
    clock = FakeClock()
    det = make(clock)
    a, b = Peer("a"), Peer("b")
    run_for(det, clock, 1.0, [a, b])
    changes = run_for(det, clock, silence, [b])
    assert ("a" not in det.alive()) is dead
    assert "b" in det.alive()
    if dead:
        [t] = changes
        assert (t.peer, t.reason) == ("a", "deadline")
        # The detection time the histogram records: from the last heartbeat to now.
        assert t.silence_seconds is not None and 0.35 <= t.silence_seconds < 0.35 + 0.1 + 1e-9


def test_leaving_is_immediate() -> None:
    clock = FakeClock()
    det = make(clock)
    a = Peer("a")
    run_for(det, clock, 0.5, [a])
    clock.advance(0.01)
    dropped, changes = det.receive(a.beat(PacketType.LEAVING), clock.now)
    assert dropped is None
    assert changes == [Transition(peer="a", alive=False, reason="leaving")]
    assert "a" not in det.alive()
    # No second death when the deadline would have passed.
    assert run_for(det, clock, 1.0, []) == [Transition(peer="b", alive=False, reason="deadline", silence_seconds=None)]


def test_replayed_leaving_cannot_kill_a_live_peer() -> None:
    clock = FakeClock()
    det = make(clock)
    a = Peer("a")
    leaving = a.beat(PacketType.LEAVING)
    det.receive(leaving, clock.now)
    run_for(det, clock, 0.5, [a])  # a restarted its loop and talks again (same incarnation, higher seq)
    assert "a" in det.alive()
    dropped, changes = det.receive(leaving, clock.now)  # an attacker replays the old LEAVING
    assert dropped is not None and dropped.reason is DropReason.REPLAY
    assert changes == [] and "a" in det.alive()


def test_rejoin_needs_two_heartbeats_in_a_row() -> None:
    clock = FakeClock()
    det = make(clock)
    a = Peer("a")
    run_for(det, clock, 1.0, [a])
    run_for(det, clock, 0.5, [])
    assert "a" not in det.alive()
    a.restart()
    clock.advance(0.1)
    assert det.receive(a.beat(), clock.now) == (None, [])  # one stray packet is not enough
    clock.advance(0.1)
    assert det.receive(a.beat(), clock.now) == (None, [Transition(peer="a", alive=True, reason="heartbeat")])
    assert "a" in det.alive()


def test_isolated_heartbeats_do_not_revive() -> None:
    clock = FakeClock()
    det = make(clock)
    a = Peer("a")
    run_for(det, clock, 1.0, [])
    for _ in range(5):  # one packet every second: a flaky link, never two within the deadline
        clock.advance(1.0)
        assert det.receive(a.beat(), clock.now) == (None, [])
        assert det.tick(clock.now) == []
    assert "a" not in det.alive()


def test_older_incarnation_is_a_replay() -> None:
    clock = FakeClock()
    det = make(clock)
    a = Peer("a", incarnation=10)
    run_for(det, clock, 0.3, [a])
    old = Heartbeat(type=PacketType.HEARTBEAT, sender="a", receiver="me", incarnation=9, seq=1000, sent_at_ns=0)
    dropped, _ = det.receive(old, clock.now)
    assert dropped is not None and dropped.reason is DropReason.REPLAY


@pytest.mark.parametrize("stall", [0.4, 1.0, 5.0], ids=["0.4s", "1s", "5s"])
def test_a_stalled_loop_does_not_fail_everyone_over(stall: float) -> None:
    """Our process was not scheduled for `stall` seconds; the peers' packets were lost.

    Without the stall rule every peer would be declared dead on wake-up (their
    last heartbeat is `stall` old). With it, the unobserved time is forgiven
    and the peers' next heartbeats (one interval later) arrive in time.
    """
    clock = FakeClock()
    det = make(clock)
    a, b = Peer("a"), Peer("b")
    run_for(det, clock, 1.0, [a, b])
    clock.advance(stall)
    assert det.tick(clock.now) == []
    assert det.stalls == 1
    assert run_for(det, clock, 2.0, [a, b]) == []
    assert det.alive() == {"me", "a", "b"}


def test_without_the_stall_rule_the_same_stall_fails_over() -> None:
    # The counterfactual for the test above: the rule is what prevents it.
    clock = FakeClock()
    det = make(clock, stall_after_seconds=1e9)
    a, b = Peer("a"), Peer("b")
    run_for(det, clock, 1.0, [a, b])
    clock.advance(1.0)
    assert {t.peer for t in det.tick(clock.now)} == {"a", "b"}


def test_a_peer_that_died_during_our_stall_is_still_detected() -> None:
    clock = FakeClock()
    det = make(clock)
    a, b = Peer("a"), Peer("b")
    run_for(det, clock, 1.0, [a, b])
    clock.advance(1.0)  # stall; a died meanwhile
    det.tick(clock.now)
    changes = run_for(det, clock, 0.4, [b])
    assert [(t.peer, t.reason) for t in changes] == [("a", "deadline")]


def test_a_slow_but_running_loop_still_detects_within_a_bound() -> None:
    # Every turn of our loop takes 0.25 s (starved but running): each turn
    # counts one interval, so detection slows down but still happens.
    clock = FakeClock()
    det = make(clock)
    a, b = Peer("a"), Peer("b")
    run_for(det, clock, 1.0, [a, b])
    changes = run_for(det, clock, 2.0, [b], step=0.25)
    assert [t.peer for t in changes] == ["a"]


def test_config_changes() -> None:
    clock = FakeClock()
    det = make(clock)
    a = Peer("a")
    run_for(det, clock, 0.5, [a])
    changes = det.set_peers(frozenset({"me", "a", "c"}), clock.now)
    # b vanished (it was presumed alive), c is new and starts dead until heard.
    assert changes == [Transition(peer="b", alive=False, reason="removed")]
    assert det.alive() == {"me", "a"}
    c = Peer("c")
    assert run_for(det, clock, 0.3, [a, c]) == [Transition(peer="c", alive=True, reason="heartbeat")]


# -- proof of life: the receiver's current incarnation (issue 15) ----------------


def test_heartbeats_recorded_before_our_restart_do_not_keep_a_dead_peer_alive() -> None:
    """An hour-old genuine heartbeat stream, replayed after we restarted, proves nothing.

    Our previous run (incarnation 50) heard `a`; an attacker recorded it. `a`
    is dead now. We restart as incarnation ME: our replay window is empty, so
    the recorded packets are "fresh", but they echo 50, not ME.
    """
    clock = FakeClock()
    recorded = Peer("a", incarnation=10, echo=50)
    tape = [recorded.beat() for _ in range(40)]
    det = make(clock, peers=("a",))
    changes: list[Transition] = []
    reasons = set()
    for hb in tape:  # played back at the heartbeat rate, through the startup grace and beyond
        clock.advance(0.1)
        dropped, ch = det.receive(hb, clock.now)
        assert dropped is not None
        reasons.add(dropped.reason)
        changes += ch + det.tick(clock.now)
    assert reasons == {DropReason.STALE_ECHO}
    assert [(t.peer, t.alive, t.reason) for t in changes] == [("a", False, "deadline")]
    assert det.alive() == {"me"}
    assert not det.peers()["a"].confirmed


def test_a_live_peer_proves_itself_one_interval_after_our_restart() -> None:
    # Its first packet was sent before it heard our new run (echo 0); we record
    # its incarnation (so we echo it back), and its next packet echoes ours.
    clock = FakeClock()
    det = make(clock, peers=("a",))
    a = Peer("a", incarnation=10, echo=0)
    dropped, _ = det.receive(a.beat(), clock.advance(0.1))
    assert dropped is not None and dropped.reason is DropReason.STALE_ECHO
    assert det.replay.incarnation_of("a") == 10  # what our next heartbeat echoes
    a.echo = ME
    assert run_for(det, clock, 2.0, [a]) == []
    assert det.alive() == {"me", "a"} and det.peers()["a"].confirmed


def test_a_replayed_leaving_from_before_our_restart_kills_nobody() -> None:
    clock = FakeClock()
    det = make(clock, peers=("a",))
    a = Peer("a", incarnation=10)
    run_for(det, clock, 0.5, [a])
    old = Heartbeat(type=PacketType.LEAVING, sender="a", receiver="me", incarnation=10, seq=a.seq + 1,
                    sent_at_ns=0, echo_incarnation=ME - 1)
    dropped, changes = det.receive(old, clock.now)
    assert dropped is not None and dropped.reason is DropReason.STALE_ECHO and changes == []
    assert det.alive() == {"me", "a"}


def test_our_new_incarnation_is_what_must_be_echoed() -> None:
    # After the worker re-incarnates (clock stepped back), echoes of the old one stop counting.
    clock = FakeClock()
    det = make(clock, peers=("a",))
    a = Peer("a")
    run_for(det, clock, 0.5, [a])
    det.incarnation = ME + 100
    dropped, _ = det.receive(a.beat(), clock.advance(0.1))
    assert dropped is not None and dropped.reason is DropReason.STALE_ECHO
    a.echo = ME + 100
    dropped, _ = det.receive(a.beat(), clock.advance(0.1))
    assert dropped is None


# -- the stall rule forgives starvation, not our own work (issue 15) -------------


def test_a_gap_spent_receiving_is_not_forgiven() -> None:
    """A 1 s gap between ticks during which our loop was on the CPU (a flood): a silent peer dies."""
    clock = FakeClock()
    det = make(clock)
    a, b = Peer("a"), Peer("b")
    run_for(det, clock, 1.0, [a, b])
    clock.advance(1.0)
    det.receive(b.beat(), clock.now)  # b got through the flood; a died
    changes = det.tick(clock.now, busy_seconds=0.98)
    assert det.stalls == 0
    assert [(t.peer, t.reason) for t in changes] == [("a", "deadline")]


@pytest.mark.parametrize(("busy", "dies"), [(0.2, False), (0.3, True)])
def test_only_the_unbusy_part_of_a_gap_is_forgiven(busy: float, dies: bool) -> None:
    # A 1 s gap, `busy` of it our own work: 1 - busy off the CPU is a stall, of
    # which one interval was ours to sleep; the rest is added to the deadlines.
    # The observed silence is busy + one interval: 0.3 s survives the 0.35 s
    # deadline, 0.4 s does not.
    clock = FakeClock()
    det = make(clock, peers=("a",))
    a = Peer("a")
    run_for(det, clock, 1.0, [a])
    deadline = det.peers()["a"].deadline
    clock.advance(1.0)
    changes = det.tick(clock.now, busy_seconds=busy)
    assert det.stalls == 1
    assert det.stalled_seconds == pytest.approx(0.9 - busy)
    assert [t.peer for t in changes] == (["a"] if dies else [])
    if not dies:
        assert det.peers()["a"].deadline == pytest.approx(deadline + 0.9 - busy)


# -- the cheap tick: a lower bound instead of a pass over every peer per loop turn --------------

# One step of a random run: (peer index, what it does, seconds to advance before it).
_ACTIONS = st.sampled_from(["beat", "leave", "restart", "tick", "silent"])
_STEPS = st.lists(st.tuples(st.integers(0, 3), _ACTIONS, st.floats(0.0, 0.5)), max_size=80)


def act(det: FailureDetector, peer: Peer, action: str, now: float, busy: float = 0.0) -> list[Transition]:
    """One step of a random run; a tick's transitions."""
    if action == "beat":
        det.receive(peer.beat(), now)
    elif action == "leave":
        det.receive(peer.beat(PacketType.LEAVING), now)
    elif action == "restart":
        peer.restart()
    elif action == "tick":
        return det.tick(now, busy)
    return []


@given(steps=_STEPS, busy=st.floats(0.0, 0.2))
@settings(max_examples=200, deadline=None)
def test_a_tick_expires_exactly_the_overdue_live_peers_and_next_deadline_is_a_lower_bound(
    steps: list[tuple[int, str, float]], busy: float
) -> None:
    names = ("a", "b", "c", "d")
    clock = FakeClock()
    det = make(clock, peers=names)
    peers = [Peer(n) for n in names]
    for index, action, wait in steps:
        clock.advance(wait)
        before = {n: (s.alive, s.deadline) for n, s in det.peers().items()}
        stall = clock.now - det._last_tick - busy > SETTINGS.stall_after
        looked = stall or clock.now >= det.next_deadline()
        changes = act(det, peers[index], action, clock.now, busy)
        if action == "tick":
            if not stall:
                # Without a stall nothing moved deadlines: exactly the overdue live peers die.
                overdue = {n for n, (alive, deadline) in before.items() if alive and clock.now >= deadline}
                assert {t.peer for t in changes} == overdue
            assert all(not t.alive and t.reason == "deadline" for t in changes)
            assert not any(s.alive and clock.now >= s.deadline for s in det.peers().values())
            if looked and not stall:
                # A tick that had to look leaves the bound exact: the earliest live deadline.
                assert det.next_deadline() == min((s.deadline for s in det.peers().values() if s.alive),
                                                  default=math.inf)  # fmt: skip
        live = [s.deadline for s in det.peers().values() if s.alive]
        assert det.next_deadline() <= min(live, default=math.inf)


@given(steps=_STEPS)
@settings(max_examples=200, deadline=None)
def test_version_grows_whenever_a_judgement_input_flips(steps: list[tuple[int, str, float]]) -> None:
    names = ("a", "b", "c", "d")
    clock = FakeClock()
    det = make(clock, peers=names)
    peers = [Peer(n) for n in names]

    def inputs() -> dict[str, tuple[bool, bool, bool]]:
        return {n: (s.alive, s.confirmed, s.heard_at is not None) for n, s in det.peers().items()}

    for index, action, wait in steps:
        clock.advance(wait)
        before, version = inputs(), det.version
        act(det, peers[index], action, clock.now)
        after = inputs()
        # heard_at matters only for a live peer (the socket filter's strict set).
        strict_before = {n for n, (alive, _, heard) in before.items() if alive and heard}
        strict_after = {n for n, (alive, _, heard) in after.items() if alive and heard}
        flipped = {n: v[:2] for n, v in before.items()} != {n: v[:2] for n, v in after.items()}
        if flipped or strict_before != strict_after:
            assert det.version > version


def test_peer_set_changes_grow_the_version() -> None:
    clock = FakeClock()
    det = make(clock)
    version = det.version
    det.set_peers(frozenset({"a", "c"}), clock.now)
    assert det.version > version


def test_a_peer_heard_during_the_grace_is_detected_at_its_own_deadline_not_the_grace() -> None:
    # The grace (0.7 s) is later than a heard peer's deadline (heard + 0.35 s):
    # the loop must wake at the earlier one.
    clock = FakeClock()
    det, a = make(clock, peers=("a",)), Peer("a")
    det.receive(a.beat(), clock.advance(0.05))
    heard = clock.now
    assert det.next_deadline() == pytest.approx(heard + 0.35)
    changes = run_for(det, clock, 0.4, talking=[])  # ticks every 0.1 s, as the loop would
    assert changes == [Transition(peer="a", alive=False, reason="deadline", silence_seconds=pytest.approx(0.4))]
    assert clock.now < 1000.0 + SETTINGS.dead_after_seconds * 2  # before the grace would have ended


# -- the adaptive deadline (deadAfterSeconds unset; deadline.py) -----------------


def make_adaptive(clock: FakeClock, peers: tuple[str, ...] = ("a", "b")) -> FailureDetector:
    settings = DetectorSettings(interval_seconds=0.1)
    return FailureDetector(settings, node_name="me", incarnation=ME, peers=frozenset(peers) | {"me"}, now=clock.now)


def beat_with_lateness(det: FailureDetector, clock: FakeClock, peer: Peer, late: list[float]) -> None:
    """One heartbeat per interval from `peer`, each `late[i]` seconds behind its schedule."""
    start = clock.now
    for i, lateness in enumerate(late, start=1):
        clock.now = start + i * 0.1 + lateness
        dropped, _ = det.receive(peer.beat(), clock.now)
        assert dropped is None
        det.tick(clock.now)
    clock.now = start + len(late) * 0.1 + late[-1]


@pytest.mark.parametrize(
    ("silence", "dead"),
    [(0.3, False), (0.305, False), (0.311, True), (0.4, True)],
    ids=["3-intervals", "within-floor", "past-floor", "long"],
)
def test_an_on_time_peer_is_dead_after_three_intervals_and_the_floor(silence: float, dead: bool) -> None:
    clock = FakeClock()
    det = make_adaptive(clock, peers=("a",))
    a = Peer("a")
    beat_with_lateness(det, clock, a, [0.0] * 30)
    changes = run_for(det, clock, silence, [])
    assert ("a" not in det.alive()) is dead
    if dead:
        [t] = changes
        assert t.reason == "deadline"


def test_a_peer_seen_late_keeps_a_longer_deadline_and_is_not_failed_over() -> None:
    """The same silence kills an on-time peer but not one whose heartbeats were late lately."""
    clock = FakeClock()
    det = make_adaptive(clock)
    steady, loaded = Peer("a"), Peer("b")
    start = clock.now
    # a: on time; b: on a loaded host, up to 40 ms behind its schedule.
    for i in range(1, 31):
        lateness = 0.04 if i % 5 == 1 else 0.0
        clock.now = start + i * 0.1
        assert det.receive(steady.beat(), clock.now)[0] is None
        clock.now += lateness
        assert det.receive(loaded.beat(), clock.now)[0] is None
        det.tick(clock.now)
    # Both fall silent; 0.35 s after their last heartbeats only a is dead.
    changes = run_for(det, clock, 0.35, [])
    assert [t.peer for t in changes] == ["a"]
    assert "b" in det.alive()
    # b's margin is 10 ms + 2 x 40 ms (decayed a little): dead once that has passed too.
    assert [t.peer for t in run_for(det, clock, 0.042, [])] == ["b"]


def test_retime_switches_to_a_fixed_deadline() -> None:
    clock = FakeClock()
    det = make_adaptive(clock, peers=("a",))
    a = Peer("a")
    beat_with_lateness(det, clock, a, [0.0] * 10)
    det.retime(DetectorSettings(interval_seconds=0.1, dead_after_seconds=1.0))
    beat_with_lateness(det, clock, a, [0.0])
    assert run_for(det, clock, 0.9, []) == []
    assert [t.peer for t in run_for(det, clock, 0.11, [])] == ["a"]


def test_under_a_flood_every_peer_gets_the_longest_deadline_and_a_dead_one_is_still_detected() -> None:
    """A receive turn cut short by its budget (detector.pressure): heartbeats may wait behind the junk."""
    clock = FakeClock()
    det = make_adaptive(clock)
    a, b = Peer("a"), Peer("b")
    run_for(det, clock, 3.0, [a, b])  # on time: 0.31 s each
    det.pressure(clock.now)
    longest = det.settings.policy.longest
    assert longest == pytest.approx(0.7)
    # b's heartbeats are lost in the flood for 0.5 s (it would be dead after 0.31 s), a is dead for good.
    changes = run_for(det, clock, 0.5, [])
    assert changes == []
    det.pressure(clock.now)
    changes += run_for(det, clock, 0.1, [b])
    changes += run_for(det, clock, 0.15, [b])
    assert [(t.peer, t.reason) for t in changes] == [("a", "deadline")]
    assert changes[0].silence_seconds is not None and changes[0].silence_seconds < longest + 0.1 + 1e-9
    assert "b" in det.alive()
    # After the flood b's 0.6 s gap is learnt lateness (its margin is at the cap for a while),
    # and a dead b is still found within the longest deadline.
    run_for(det, clock, 2.0, [b])
    assert [t.peer for t in run_for(det, clock, longest + 0.05, [])] == ["b"]


@given(steps=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["beat", "leave", "restart", "tick", "silent",
                                                                    "pressure"]), st.floats(0.0, 0.3)), max_size=80))
@settings(max_examples=200, deadline=None)
def test_with_the_adaptive_deadline_next_deadline_stays_a_lower_bound(steps: list[tuple[int, str, float]]) -> None:
    """Learnt margins shrink as the peak decays, so a deadline may move earlier: the bound must follow."""
    names = ("a", "b", "c", "d")
    clock = FakeClock()
    det = FailureDetector(DetectorSettings(interval_seconds=0.05), node_name="me", incarnation=ME,
                          peers=frozenset(names) | {"me"}, now=clock.now)  # fmt: skip
    peers = [Peer(n) for n in names]
    for index, action, wait in steps:
        clock.advance(wait)
        if action == "pressure":
            det.pressure(clock.now)
        else:
            act(det, peers[index], action, clock.now)
        live = [s.deadline for s in det.peers().values() if s.alive]
        assert det.next_deadline() <= min(live, default=math.inf)
        if action == "tick":
            assert not any(s.alive and clock.now >= s.deadline for s in det.peers().values())
