"""The failure detector with a fake clock: deadlines, LEAVING, stalls, rejoin, replays."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from supervisor.membership.codec import DropReason, Heartbeat, PacketType
from supervisor.membership.detector import DetectorSettings, FailureDetector, Transition

SETTINGS = DetectorSettings(interval_seconds=0.1, dead_after_seconds=0.35)


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
    sent: list[Heartbeat] = field(default_factory=list)

    def beat(self, ptype: PacketType = PacketType.HEARTBEAT) -> Heartbeat:
        self.seq += 1
        hb = Heartbeat(
            type=ptype, sender=self.name, receiver="me", incarnation=self.incarnation, seq=self.seq, sent_at_ns=0
        )
        self.sent.append(hb)
        return hb

    def restart(self) -> None:
        self.incarnation += 1
        self.seq = 0


def make(clock: FakeClock, peers: tuple[str, ...] = ("a", "b"), **kw: float) -> FailureDetector:
    settings = DetectorSettings(interval_seconds=0.1, dead_after_seconds=0.35, **kw)  # type: ignore[arg-type]
    return FailureDetector(settings, node_name="me", peers=frozenset(peers) | {"me"}, now=clock.now)


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
