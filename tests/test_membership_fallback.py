"""Who counts as alive: heartbeats, the startup grace, or (Kubernetes) the Node's readiness."""

from __future__ import annotations

import pytest

from supervisor.membership.codec import Heartbeat, PacketType
from supervisor.membership.detector import DetectorSettings, FailureDetector
from supervisor.membership.fallback import HEARTBEAT, KUBERNETES_READY, STARTUP_GRACE, Judgement, judge, judge_all

# (heartbeat_alive, confirmed, kubernetes, vouched) -> (alive, basis)
CASES = [
    pytest.param(True, True, True, False, True, HEARTBEAT, id="k8s-heard-alive-node-notready"),
    pytest.param(False, True, True, True, False, HEARTBEAT, id="k8s-heard-then-silent-node-ready-is-dead"),
    pytest.param(False, False, True, True, True, KUBERNETES_READY, id="k8s-never-heard-node-ready-is-alive"),
    pytest.param(False, False, True, False, False, KUBERNETES_READY, id="k8s-never-heard-node-notready-is-dead"),
    pytest.param(True, False, True, False, True, STARTUP_GRACE, id="k8s-startup-grace"),
    pytest.param(True, False, False, False, True, STARTUP_GRACE, id="standalone-startup-grace"),
    pytest.param(False, False, False, True, False, HEARTBEAT, id="standalone-never-heard-is-dead"),
    pytest.param(True, True, False, False, True, HEARTBEAT, id="standalone-heard-alive"),
    pytest.param(False, True, False, True, False, HEARTBEAT, id="standalone-heard-then-silent"),
]


@pytest.mark.parametrize(("hb_alive", "confirmed", "kubernetes", "vouched", "alive", "basis"), CASES)
def test_judge(hb_alive: bool, confirmed: bool, kubernetes: bool, vouched: bool, alive: bool, basis: str) -> None:
    got = judge(heartbeat_alive=hb_alive, confirmed=confirmed, kubernetes=kubernetes, vouched=vouched)
    assert got == Judgement(alive=alive, basis=basis)

ME = 77  # this node's incarnation, which every heartbeat to it must echo


class Peer:
    def __init__(self, name: str) -> None:
        self.name, self.seq = name, 0

    def beat(self, ptype: PacketType = PacketType.HEARTBEAT) -> Heartbeat:
        self.seq += 1
        return Heartbeat(type=ptype, sender=self.name, receiver="me", incarnation=1, seq=self.seq, sent_at_ns=0,
                         echo_incarnation=ME)


def detector(now: float = 100.0) -> FailureDetector:
    settings = DetectorSettings(interval_seconds=0.1, dead_after_seconds=0.35)
    return FailureDetector(settings, node_name="me", incarnation=ME, peers=frozenset({"me", "b"}), now=now)


def tick_until(det: FailureDetector, start: float, end: float) -> None:
    """Tick in loop-sized steps (one big jump would look like our own stall and be forgiven)."""
    t = start
    while t < end - 1e-9:
        t = min(t + 0.05, end)
        det.tick(t)


def k8s(det: FailureDetector, vouched: frozenset[str] = frozenset({"b"})) -> Judgement:
    return judge_all(det.peers(), kubernetes=True, vouched=vouched)["b"]


def test_firewalled_peer_falls_back_to_readiness_after_the_grace() -> None:
    det = detector()
    assert k8s(det) == Judgement(alive=True, basis=STARTUP_GRACE)
    tick_until(det, 100.0, 100.71)  # the grace (2 x 0.35) is over, nothing heard
    assert k8s(det) == Judgement(alive=True, basis=KUBERNETES_READY)
    assert k8s(det, vouched=frozenset()) == Judgement(alive=False, basis=KUBERNETES_READY)
    assert judge_all(det.peers(), kubernetes=False, vouched=frozenset({"b"}))["b"].alive is False


def test_first_heartbeat_does_not_flip_a_fallback_peer_dead() -> None:
    # One heartbeat is not a rise: the peer must not drop out for one interval
    # between "heard once" and "risen" (an IP would move away and back).
    det, b = detector(), Peer("b")
    tick_until(det, 100.0, 101.0)
    det.receive(b.beat(), 101.0)
    assert k8s(det) == Judgement(alive=True, basis=KUBERNETES_READY)
    det.receive(b.beat(), 101.1)
    assert k8s(det) == Judgement(alive=True, basis=HEARTBEAT)
    tick_until(det, 101.0, 101.5)  # silent again: now heartbeats alone judge it, sub-second
    assert k8s(det) == Judgement(alive=False, basis=HEARTBEAT)


def test_heard_during_the_grace_is_judged_by_heartbeats() -> None:
    det, b = detector(), Peer("b")
    det.receive(b.beat(), 100.05)
    assert k8s(det) == Judgement(alive=True, basis=HEARTBEAT)
    tick_until(det, 100.05, 100.41)
    assert k8s(det) == Judgement(alive=False, basis=HEARTBEAT)


def test_leaving_is_believed_even_from_a_peer_never_risen() -> None:
    det, b = detector(), Peer("b")
    tick_until(det, 100.0, 101.0)
    det.receive(b.beat(PacketType.LEAVING), 101.0)
    assert k8s(det) == Judgement(alive=False, basis=HEARTBEAT)
