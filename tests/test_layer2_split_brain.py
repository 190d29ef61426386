"""The announcer's split-brain handling: re-assert on rejoin, the lower MAC keeps, the higher yields."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from plugins.layer2 import frames
from plugins.layer2.announcer import Layer2Announcer
from plugins.layer2.conflicts import (
    REASSERT_EVERY_SECONDS,
    REJOIN_GRACE_SECONDS,
    TAKEOVER_GRACE_SECONDS,
    YIELD_HOLD_SECONDS,
)
from plugins.layer2.gratuitous import BURST_DURATION
from plugins.layer2.interfaces import Link
from plugins.layer2.responder import Duplicate
from supervisor.api import Config
from tests.test_layer2_announcer import (
    ETH0,
    ETH1,
    NODES,
    FakeBinder,
    FakeResponder,
    RecordingHost,
    WallClock,
    config,
    ip,
    view,
    web,
    winner_of,
)

VIP = "10.0.10.10"
PACKED = ip(VIP).packed
LOWER = bytes.fromhex("020000000001")  # below ETH0's 02:00:00:00:00:a1
HIGHER = bytes.fromhex("0200000000ff")


def peers_config() -> Config:
    """The shared test config, its Nodes with addresses (membership peers: missing one is a partition)."""
    cfg = config()
    nodes = tuple(dataclasses.replace(n, addresses=(ip(f"10.0.10.{i}"),)) for i, n in enumerate(cfg.nodes, 1))
    return dataclasses.replace(cfg, nodes=nodes)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    """One announcer on fakes, with a controllable monotonic clock."""

    def __init__(self, name: str, links: tuple[Link, ...] = (ETH0,)) -> None:
        self.name = name
        self.clock = Clock()
        self.host = RecordingHost(node_name=name)
        self.responder = FakeResponder()
        self.a = Layer2Announcer(
            self.host, responder=self.responder, binder=FakeBinder(), watch_links=False,  # type: ignore[arg-type]
            list_links=lambda: links, exclude=(), clock=self.clock, wall_clock=WallClock(),
        )  # fmt: skip
        self.a.start()

    def update(self, members: tuple[str, ...] = NODES) -> None:
        self.a.update(view(self.name, peers_config(), web(VIP), members=members))

    def at(self, t: float) -> None:
        """Advance the clock to `t` seconds after 1000 and tick."""
        self.clock.now = 1000.0 + t
        self.a.tick(self.clock.now)

    def claim(self, mac: bytes, interface: str = "eth0") -> None:
        self.responder.duplicates.append(Duplicate(ip=PACKED, mac=mac, interface=interface))

    def frames_sent(self) -> int:
        n = len(self.responder.sent)
        self.responder.sent.clear()
        return n

    def kinds_sent(self) -> list[str]:
        """What went out since the last call: "claim" (gratuitous, sender IP = VIP) or "probe" (sender 0.0.0.0)."""
        kinds = []
        for _, frame in self.responder.sent:
            arp = frames.parse_arp(frame)
            assert arp is not None and arp.target_ip == PACKED
            kinds.append("claim" if arp.sender_ip == PACKED else "probe" if arp.sender_ip == bytes(4) else "?")
        self.responder.sent.clear()
        return kinds

    def answers_on(self) -> frozenset[str]:
        return self.responder.owned4.get(PACKED, frozenset())

    def quiet_burst(self) -> None:
        """Let the takeover burst run out and forget its frames."""
        for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
            self.at(t)
        self.frames_sent()


def owner_node(links: tuple[Link, ...] = (ETH0,)) -> Node:
    """The election winner, announcing alone (a split brain: it hears no peer)."""
    node = Node(winner_of(VIP) or "", links)
    node.update(members=(node.name,))
    node.quiet_burst()
    return node


# -- 1. re-assert on rejoin ------------------------------------------------------


def test_a_member_rejoining_restarts_the_burst_for_every_owned_ip(caplog: pytest.LogCaptureFixture) -> None:
    n = Node(winner_of(VIP) or "")
    loser = next(m for m in NODES if m != n.name)
    n.update(members=tuple(m for m in NODES if m != loser))  # the loser is away; the owner is the same
    n.quiet_burst()
    n.update(members=tuple(m for m in NODES if m != loser))  # a config refresh: nothing joined
    assert n.frames_sent() == 0
    with caplog.at_level(logging.INFO):
        n.update(members=NODES)  # it came back
    assert n.frames_sent() == 2, "both ARP forms go out at once, inside update()"
    assert f"layer2.rejoin joined={loser}" in caplog.text
    n.at(7.1)
    assert n.frames_sent() == 2, "a whole burst, not one round"


def test_a_member_leaving_sends_nothing_new() -> None:
    n = Node(winner_of(VIP) or "")
    n.update(members=NODES)
    n.quiet_burst()
    loser = next(m for m in NODES if m != n.name)
    n.update(members=tuple(m for m in NODES if m != loser))
    assert n.frames_sent() == 0


# -- 2. the lower MAC keeps ----------------------------------------------------------


def test_a_higher_mac_claim_is_answered_with_one_burst(caplog: pytest.LogCaptureFixture) -> None:
    n = owner_node()
    n.claim(HIGHER)
    with caplog.at_level(logging.WARNING):
        n.at(10.0)
    assert n.kinds_sent() == ["claim", "claim"], "re-asserted in the same tick, both ARP forms"
    assert f"layer2.reassert ip={VIP} over_mac=02:00:00:00:00:ff" in caplog.text
    assert n.answers_on() == {"eth0"}
    status = n.a.status()
    assert [(r["ip"], r["over_mac"]) for r in status["reasserted"]] == [(VIP, "02:00:00:00:00:ff")]
    assert "against 02:00:00:00:00:ff" in status["announcements"][0]["reason"]
    for t in (11.15, 12.25, 13.35, 14.45):
        n.at(t)
    assert n.frames_sent() == 8, "the rest of the burst"
    for t in (15.55, 16.65, 20.0, 30.0):
        n.at(t)
    assert n.frames_sent() == 0, "then quiet until another claim"
    assert n.a.status()["reasserted"] == []


def test_reasserts_restart_at_most_once_per_burst_window() -> None:
    n = owner_node()
    n.claim(HIGHER)
    n.at(10.0)
    n.frames_sent()
    n.claim(HIGHER)
    n.at(10.5)  # a claim between rounds: no extra round
    assert n.frames_sent() == 0
    n.claim(HIGHER)
    n.at(10.0 + REASSERT_EVERY_SECONDS)  # a new window: a fresh burst at once
    assert n.frames_sent() == 2


# -- 2. the higher MAC yields ---------------------------------------------------------


def test_a_lower_mac_claim_makes_us_yield_watch_and_probe(caplog: pytest.LogCaptureFixture) -> None:
    n = owner_node()
    n.claim(LOWER)
    with caplog.at_level(logging.WARNING):
        n.at(10.0)
    assert f"layer2.yield ip={VIP} to_mac=02:00:00:00:00:01" in caplog.text
    assert n.answers_on() == frozenset(), "never answers for an IP it does not hold"
    assert n.responder.watched4 == {PACKED: frozenset({"eth0"})}
    assert n.host.announced() == set()
    status = n.a.status()
    assert [(y["ip"], y["to_mac"]) for y in status["yielded"]] == [(VIP, "02:00:00:00:00:01")]
    assert status["announcements"] == []
    assert status["elections"][0]["not_announced_reason"].startswith("yielded to 02:00:00:00:00:01 on eth0")
    for t in (11.15, 12.25, 13.35):  # the keeper answers our probes: we stay yielded
        n.at(t)
        assert n.kinds_sent() == ["probe"], "only a probe, which claims nothing"
        n.claim(LOWER)
    assert n.answers_on() == frozenset()


def test_a_keeper_that_answers_probes_holds_the_yield_for_good() -> None:
    """The keeper may never have seen our claim (we announced first): its answers alone keep us yielded."""
    n = owner_node()
    n.claim(LOWER)
    n.at(10.0)
    t = 10.0
    while t < 60.0:
        t += 0.05
        n.at(t)
        if "probe" in n.kinds_sent():
            n.claim(LOWER)  # the keeper's reply to our probe
    assert n.answers_on() == frozenset() and n.a.status()["yielded"] != []


def test_the_yield_expires_when_the_keeper_is_silent_and_we_announce_again() -> None:
    n = owner_node()
    n.claim(LOWER)
    n.at(10.0)
    probes = 0
    for t in (10.5, 11.15, 12.25, 13.35 - 0.1):
        n.at(t)
        probes += n.kinds_sent().count("probe")
    assert probes == 2 and n.answers_on() == frozenset()
    n.at(10.0 + YIELD_HOLD_SECONDS + 0.05)
    assert n.answers_on() == {"eth0"}
    assert n.kinds_sent().count("claim") == 2, "a takeover burst: clients come back"
    assert n.a.status()["yielded"] == [] and n.responder.watched4 == {}
    n.at(16.0)
    assert "probe" not in n.kinds_sent()


def test_yield_is_per_interface() -> None:
    n = owner_node(links=(ETH0, ETH1))
    n.claim(LOWER, interface="eth0")
    n.at(10.0)
    assert n.answers_on() == {"eth1"}
    assert n.a.status()["announcements"][0]["interfaces"] == ["eth1"]


def test_a_rejoin_ends_the_yield_and_the_winner_takes_the_ip_back() -> None:
    n = owner_node()
    n.claim(LOWER)
    n.at(10.0)
    assert n.answers_on() == frozenset()
    n.clock.now = 1000.0 + 10.5
    n.update(members=NODES)  # healed; the election gives the IP to this node
    assert n.answers_on() == {"eth0"} and n.kinds_sent() == ["claim", "claim"]
    # A peer that has not seen the rejoin yet still claims: during the grace we keep, and say so.
    n.claim(LOWER)
    n.at(10.6)
    assert n.answers_on() == {"eth0"}
    n.claim(LOWER)
    n.at(10.5 + REJOIN_GRACE_SECONDS + 0.1)
    assert n.answers_on() == frozenset(), "after the grace the rule applies again"


def test_a_leaving_owners_reassert_during_its_handover_does_not_make_the_new_owner_yield() -> None:
    """SIGTERM: the old owner (lower MAC) answers 150 ms more and re-asserts against our takeover, then withdraws.

    Yielding to it would leave the IP unanswered for YIELD_HOLD_SECONDS (the
    ~3.3 s gaps test_cluster_lab's SIGTERM test saw when the MACs fell that way).
    """
    leaver = winner_of(VIP) or ""
    rest = tuple(m for m in NODES if m != leaver)
    n = Node(winner_of(VIP, members=rest) or "")
    n.update(members=NODES)
    n.quiet_burst()
    assert n.answers_on() == frozenset()
    n.at(10.0)
    n.update(members=rest)  # the owner sent LEAVING: we take over
    assert n.answers_on() == {"eth0"} and n.kinds_sent() == ["claim", "claim"]
    n.claim(LOWER)  # its re-assert, heard during its overlap
    n.at(10.05)
    assert n.answers_on() == {"eth0"}, "kept: the election gave it to us, the claimant is leaving"
    assert n.kinds_sent() == ["claim", "claim"], "and re-asserted, moving the client back at once"
    for t in (10.5, 11.0, 12.0, 14.0):
        n.at(t)
        assert n.answers_on() == {"eth0"}
    # A claim long after the takeover is a split brain again: the rule applies.
    n.claim(LOWER)
    n.at(10.0 + TAKEOVER_GRACE_SECONDS + 5.0)
    assert n.answers_on() == frozenset()


def test_a_restarted_owner_does_not_yield_to_the_node_that_held_its_ip_meanwhile() -> None:
    """The winner restarts: at its first view it takes its IP back at once.

    The node that held the IP while it was away (lower MAC) has not heard it
    rise yet, re-asserts once, then withdraws. Yielding to that re-assert left
    the IP unanswered for YIELD_HOLD_SECONDS after the withdrawal.
    """
    n = Node(winner_of(VIP) or "")
    n.update(members=NODES)  # the first view after the start: every configured node, we win
    assert n.answers_on() == {"eth0"} and n.kinds_sent() == ["claim", "claim"]
    n.claim(LOWER)  # the interim holder's re-assert
    n.at(0.05)
    assert n.answers_on() == {"eth0"}, "kept: the election gave it to us, the claimant is about to withdraw"
    assert n.kinds_sent() == ["claim", "claim"], "and re-asserted, moving the client back at once"
    for t in (0.5, 1.0, 2.0, 4.0):
        n.at(t)
        assert n.answers_on() == {"eth0"}
    # A claim long after the start is a split brain again: the rule applies.
    n.claim(LOWER)
    n.at(TAKEOVER_GRACE_SECONDS + 5.0)
    assert n.answers_on() == frozenset()


def test_a_node_starting_alone_grants_itself_no_grace() -> None:
    n = Node(winner_of(VIP) or "")
    n.update(members=(n.name,))  # a config without peers, or a split brain from the start
    n.claim(LOWER)
    n.at(0.05)
    assert n.answers_on() == frozenset(), "a lower MAC claim is a split brain: we yield at once"


def test_a_member_leaving_that_owned_nothing_of_ours_grants_no_grace() -> None:
    n = Node(winner_of(VIP) or "")
    n.update(members=NODES)
    n.quiet_burst()
    other = next(m for m in NODES if m != n.name)
    n.at(10.0)
    n.update(members=tuple(m for m in NODES if m != other))  # we owned the VIP already: no takeover
    n.claim(LOWER)
    n.at(10.05)
    assert n.answers_on() == frozenset(), "a lower MAC claim is a split brain: we yield at once"


def test_a_claim_for_an_ip_just_withdrawn_sends_nothing() -> None:
    n = owner_node()
    n.claim(HIGHER)  # read by the responder before the withdraw
    n.a.update(view(n.name, peers_config(), members=(n.name,)))  # the Service is gone
    n.at(10.0)
    assert n.frames_sent() == 0
    assert n.a.status()["reasserted"] == [] and n.a.status()["yielded"] == []


@pytest.mark.parametrize("first", [pytest.param("low", id="lower-mac-first"), pytest.param("high", id="higher-first")])
def test_two_claimants_converge_on_the_lower_mac_and_stay(first: str) -> None:
    """Both sides of a split brain, each alone, wired to each other through the frames they send."""
    low = Node("n1", links=(Link(name="eth0", index=2, mac=LOWER, flags=ETH0.flags),))
    high = Node("n2", links=(Link(name="eth0", index=2, mac=HIGHER, flags=ETH0.flags),))
    sides = {"low": low, "high": high}
    sides[first].update(members=(sides[first].name,))
    sides[first].frames_sent()  # its takeover burst goes out before the other announces: unheard
    later = high if first == "low" else low
    later.update(members=(later.name,))
    assert low.answers_on() == high.answers_on() == {"eth0"}, "split brain: both announce"
    t = 0.0
    while t < 60.0:
        t += 0.05
        for me, other, my_mac, other_mac in ((low, high, LOWER, HIGHER), (high, low, HIGHER, LOWER)):
            for kind in me.kinds_sent():
                if kind == "claim":
                    other.claim(my_mac)
                elif kind == "probe" and other.answers_on():
                    me.claim(other_mac)  # the other's answer to our probe
        low.at(t)
        high.at(t)
        if t > BURST_DURATION * 2:
            assert low.answers_on() == {"eth0"} and high.answers_on() == frozenset(), t
    assert [y["to_mac"] for y in high.a.status()["yielded"]] == [frames.mac_text(LOWER)]
