"""metalloid_failover_seconds: membership's change → this node's first gratuitous frame for the IP it took."""

from __future__ import annotations

import dataclasses

import pytest

from plugins.layer2.announcer import Layer2Announcer
from plugins.layer2.interfaces import Link
from plugins.layer2.planning import plan
from plugins.layer2.stats import FAILOVER
from supervisor.api import AnnouncerView
from tests.fakes import RecordingHost
from tests.test_layer2_announcer import ETH0, NODES, FakeBinder, FakeResponder, config, view, web

IP = "10.0.10.10"
CHANGED_AT = 5000.0  # membership's monotonic time of the change


def ranking() -> tuple[str, ...]:
    """Who wins IP with every node alive, and who is next (MetalLB's ranking)."""
    entry = plan(view(NODES[0], config(), web(IP))).elections[0]
    assert entry.election is not None
    return entry.election.ranking


class Clock:
    """The announcer's monotonic clock, set by the test."""

    def __init__(self, now: float = CHANGED_AT - 10.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def build(
    node: str, clock: Clock | None = None, links: tuple[Link, ...] = (ETH0,)
) -> tuple[Layer2Announcer, RecordingHost, FakeResponder]:
    host, responder = RecordingHost(node=node), FakeResponder()
    a = Layer2Announcer(
        host, responder=responder, binder=FakeBinder(), watch_links=False,  # type: ignore[arg-type]
        list_links=lambda: links, exclude=(), clock=clock or Clock(),
    )  # fmt: skip
    a.start()
    return a, host, responder


def at(node: str, members: tuple[str, ...], changed_at: float | None, *ips: str) -> AnnouncerView:
    v = view(node, config(), web(*(ips or (IP,))), members=members)
    return dataclasses.replace(v, members_changed_at=changed_at)


def failovers(host: RecordingHost) -> list[float]:
    return [value for name, _, value in host.observations if name == FAILOVER]


def test_taking_over_from_a_dead_owner_is_timed_to_the_first_gratuitous_frame() -> None:
    owner, second = ranking()[:2]
    clock = Clock()
    a, host, responder = build(second, clock)
    a.update(at(second, NODES, None))
    a.tick(CHANGED_AT - 1.0)
    assert not responder.sent and not failovers(host)
    # The view reaches the announcer 125 ms after membership's change; the
    # first gratuitous frame goes out at once, inside update().
    clock.now = CHANGED_AT + 0.125
    a.update(at(second, tuple(n for n in NODES if n != owner), CHANGED_AT))
    assert responder.sent, "the take-over sends gratuitous ARP at once, not at the next tick"
    assert failovers(host) == [pytest.approx(0.125)]
    a.tick(CHANGED_AT + 0.5)
    a.tick(CHANGED_AT + 2.0)
    assert len(failovers(host)) == 1, "only the first frame of the burst counts"


def test_the_time_taken_to_bind_the_ip_before_the_frame_counts() -> None:
    # bindLocal: the IP is bound (sysctls, netlink) before the frame goes out; the metric ends at the frame.
    owner, second = ranking()[:2]
    clock = Clock()

    class SlowBinder(FakeBinder):
        def bind(self, address: object) -> None:
            clock.now += 0.004
            super().bind(address)

    host, responder = RecordingHost(node=second), FakeResponder()
    a = Layer2Announcer(
        host, responder=responder, binder=SlowBinder(), watch_links=False,  # type: ignore[arg-type]
        list_links=lambda: (ETH0,), exclude=(), clock=clock,
    )  # fmt: skip
    a.start()
    bind_local = config(bind_local=True)
    a.update(dataclasses.replace(view(second, bind_local, web(IP), members=NODES), members_changed_at=None))
    clock.now = CHANGED_AT + 0.002
    a.update(dataclasses.replace(view(second, bind_local, web(IP), members=everyone_but(owner)),
                                 members_changed_at=CHANGED_AT))  # fmt: skip
    assert responder.sent
    assert failovers(host) == [pytest.approx(0.006)]


def everyone_but(node: str) -> tuple[str, ...]:
    return tuple(n for n in NODES if n != node)


# (this node's role in the ranking, first view, second view) -> no failover is observed
NOT_A_FAILOVER = [
    pytest.param("owner", None, (NODES, CHANGED_AT), id="first-view-after-start"),
    pytest.param("owner", (NODES, None), ("-third", CHANGED_AT), id="a-non-owner-left"),
    pytest.param("second", (NODES, None), ("-owner", None), id="change-time-unknown"),
    pytest.param("second", ("-owner", CHANGED_AT), ("-owner", CHANGED_AT), id="same-members-new-view"),
]


@pytest.mark.parametrize(("role", "first", "second"), NOT_A_FAILOVER)
def test_not_a_failover(
    role: str, first: tuple[object, float | None] | None, second: tuple[object, float | None]
) -> None:
    owner, runner_up, third = ranking()
    node = owner if role == "owner" else runner_up

    def members(spec: object) -> tuple[str, ...]:
        if spec == "-owner":
            return everyone_but(owner)
        if spec == "-third":
            return everyone_but(third)
        assert isinstance(spec, tuple)
        return spec

    a, host, responder = build(node)
    if first is not None:
        a.update(at(node, members(first[0]), first[1]))
        a.tick(CHANGED_AT - 1.0)
    a.update(at(node, members(second[0]), second[1]))
    a.tick(CHANGED_AT + 0.1)
    a.tick(CHANGED_AT + 1.0)
    assert responder.sent, "this node announces the IP in every case"
    assert failovers(host) == []


def test_each_takeover_is_timed_once_from_its_own_change() -> None:
    owner, second = ranking()[:2]
    clock = Clock()
    a, host, _ = build(second, clock)
    a.update(at(second, NODES, None))
    clock.now = CHANGED_AT + 0.2
    a.update(at(second, everyone_but(owner), CHANGED_AT))
    clock.now = CHANGED_AT + 0.3
    a.update(at(second, NODES, CHANGED_AT + 0.25))  # the owner came back: this node withdraws
    clock.now = CHANGED_AT + 3.1
    a.update(at(second, everyone_but(owner), CHANGED_AT + 3.0))
    a.tick(CHANGED_AT + 3.2)
    assert failovers(host) == [pytest.approx(0.2), pytest.approx(0.1)]


def test_a_takeover_announced_only_when_an_interface_appears_much_later_is_not_timed() -> None:
    owner, second = ranking()[:2]
    clock = Clock()
    a, host, responder = build(second, clock, links=())  # no interface yet
    a.update(at(second, NODES, None))
    clock.now = CHANGED_AT + 0.1
    a.update(at(second, everyone_but(owner), CHANGED_AT))  # won, but no interface to answer on
    assert not responder.sent
    a._links_changed((ETH0,))  # ten minutes later an interface appears
    a.tick(CHANGED_AT + 600.0)
    assert responder.sent, "the IP is announced once an interface is there"
    assert failovers(host) == [], "ten minutes without an interface is not a failover time"


def test_a_takeover_lost_before_its_first_frame_is_forgotten() -> None:
    owner, second = ranking()[:2]
    clock = Clock()
    a, host, responder = build(second, clock, links=())  # no interface yet
    a.update(at(second, NODES, None))
    clock.now = CHANGED_AT + 0.1
    a.update(at(second, everyone_but(owner), CHANGED_AT))  # won without an interface
    clock.now = CHANGED_AT + 0.5
    a.update(at(second, NODES, CHANGED_AT + 0.4))  # the owner is back: no longer won
    a._links_changed((ETH0,))
    a.tick(CHANGED_AT + 1.0)
    # Won again, not by a membership change this node can time (the time is unknown).
    clock.now = CHANGED_AT + 2.0
    a.update(at(second, everyone_but(owner), None))
    assert responder.sent
    assert failovers(host) == [], "the first takeover was lost; the second is not timed from it"
