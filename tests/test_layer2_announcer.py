"""The layer 2 announcer's election glue and bookkeeping, with a recording host and a fake wire."""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from plugins.layer2 import frames, plugin
from plugins.layer2.announcer import Layer2Announcer
from plugins.layer2.duplicates import MAX as MAX_DUPLICATES
from plugins.layer2.interfaces import IFF_BROADCAST, IFF_RUNNING, IFF_UP, Link
from plugins.layer2.planning import NO_ADVERTISEMENT, plan
from plugins.layer2.responder import Duplicate
from plugins.layer2.stats import ANNOUNCED, DUPLICATES, GRATUITOUS, REQUESTS, RESPONSES
from supervisor.api import (
    AnnouncerRegistry,
    AnnouncerView,
    Assignment,
    Config,
    IPAddressPool,
    L2Advertisement,
    LabelSelector,
    Service,
    ServiceKey,
)
from supervisor.config.model import AddressRange, Node, Settings

NODES = ("n1", "n2", "n3")
UP = IFF_UP | IFF_RUNNING | IFF_BROADCAST
ETH0 = Link(name="eth0", index=2, mac=bytes.fromhex("0200000000a1"), flags=UP)
ETH1 = Link(name="eth1", index=3, mac=bytes.fromhex("0200000000a2"), flags=UP)
VETH = Link(name="veth9", index=4, mac=bytes.fromhex("0200000000a3"), flags=UP)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@dataclass
class RecordingHost:
    node_name: str
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("test.layer2"))
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def counter(self, name: str, documentation: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0) + value

    def gauge(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        pass

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        self.gauges.pop((name, tuple(sorted(labels.items()))), None)

    def announced(self) -> set[tuple[str, str]]:
        return {(dict(k[1])["service"], dict(k[1])["ip"]) for k in self.gauges if k[0] == ANNOUNCED}


@dataclass
class FakePort:
    name: str
    index: int
    mac: bytes


class FakeResponder:
    def __init__(self) -> None:
        self.ports: dict[str, FakePort] = {}
        self.owned4: Mapping[bytes, frozenset[str]] = {}
        self.owned6: Mapping[bytes, frozenset[str]] = {}
        self.watched4: Mapping[bytes, frozenset[str]] = {}
        self.watched6: Mapping[bytes, frozenset[str]] = {}
        self.sent: list[tuple[str, bytes]] = []
        self.requests: dict[bytes, int] = {}
        self.responses: dict[bytes, int] = {}
        self.duplicates: collections.deque[Duplicate] = collections.deque()
        self.running = False
        self.published: list[int] = []  # the size of each set_owned

    def open(self, name: str, index: int, mac: bytes) -> None:
        self.ports[name] = FakePort(name, index, mac)

    def close(self, name: str) -> None:
        del self.ports[name]

    def set_owned(self, owned4: Mapping[bytes, frozenset[str]], owned6: Mapping[bytes, frozenset[str]]) -> None:
        self.owned4, self.owned6 = dict(owned4), dict(owned6)
        self.published.append(len(owned4) + len(owned6))

    def set_watched(self, watched4: Mapping[bytes, frozenset[str]], watched6: Mapping[bytes, frozenset[str]]) -> None:
        self.watched4, self.watched6 = dict(watched4), dict(watched6)

    def take_drops(self) -> dict[str, int]:
        return {}

    def kernel_tick(self, now: float) -> tuple[dict[bytes, int], dict[bytes, int]]:
        return {}, {}

    def kernel_status(self) -> dict[str, Any]:
        return {"interfaces": [], "entries": 0, "unavailable": "a fake responder"}

    def send(self, name: str, frame: bytes) -> bool:
        self.sent.append((name, frame))
        return True

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False
        self.owned4 = self.owned6 = {}


class FakeBinder:
    def __init__(self, leftovers: tuple[Any, ...] = ()) -> None:
        self.bound: set[Any] = set(leftovers)

    def bind(self, address: Any) -> None:
        self.bound.add(address)

    def unbind(self, address: Any) -> None:
        self.bound.discard(address)

    def remove_leftovers(self) -> tuple[Any, ...]:
        gone = tuple(self.bound)
        self.bound.clear()
        return gone


def config(*, advs: tuple[L2Advertisement, ...] | None = None, bind_local: bool = False, refresh: float = 0.0,
           node_labels: dict[str, dict[str, str]] | None = None) -> Config:  # fmt: skip
    pool = IPAddressPool(
        name="first-pool",
        addresses=(
            AddressRange(first=ip("10.0.10.10"), last=ip("10.0.10.99"), text="10.0.10.10-10.0.10.99"),
            AddressRange(first=ip("fd00::10"), last=ip("fd00::99"), text="fd00::10-fd00::99"),
        ),
    )
    other = IPAddressPool(
        name="orphan-pool", addresses=(AddressRange(first=ip("10.0.20.1"), last=ip("10.0.20.9"), text="x"),)
    )
    labels = node_labels or {}
    return Config(
        pools=(pool, other),
        l2_advertisements=advs if advs is not None else (L2Advertisement(name="l2", ip_address_pools=("first-pool",)),),
        services=tuple(Service(namespace="default", name=n, ip_families=(4, 6)) for n in ("web", "dns", "orphan")),
        nodes=tuple(Node(name=n, labels=tuple(sorted(labels.get(n, {}).items()))) for n in NODES),
        settings=Settings(bind_local=bind_local, refresh_seconds=refresh),
    )


def web(*ips: str) -> Assignment:
    return Assignment(service=ServiceKey(namespace="default", name="web"), ips=tuple(map(ip, ips)), pool="first-pool")


def view(node: str, cfg: Config, *assignments: Assignment, members: tuple[str, ...] = NODES) -> AnnouncerView:
    return AnnouncerView(
        node_name=node, mode="standalone", config=cfg, assignments=assignments, members=frozenset(members)
    )


def announcer(node: str, links: tuple[Link, ...] = (ETH0, ETH1, VETH)) -> tuple[Layer2Announcer, RecordingHost,
                                                                              FakeResponder, FakeBinder]:  # fmt: skip
    host = RecordingHost(node_name=node)
    responder = FakeResponder()
    binder = FakeBinder()
    a = Layer2Announcer(
        host, responder=responder, binder=binder, watch_links=False, list_links=lambda: links,  # type: ignore[arg-type]
        exclude=(r"^veth.*",),
    )  # fmt: skip
    return a, host, responder, binder


def winner_of(*ips: str, cfg: Config | None = None, members: tuple[str, ...] = NODES) -> str | None:
    owners = [n for n in NODES if plan(view(n, cfg or config(), web(*ips), members=members)).owned]
    assert len(owners) <= 1
    return owners[0] if owners else None


def test_the_registry_hook_registers_layer2() -> None:
    registry = AnnouncerRegistry()
    plugin.metalloid_register_announcers(registry)
    assert registry.names() == ("layer2",)


def test_exactly_one_node_wins_and_every_node_agrees() -> None:
    for last in range(10, 40):
        winners = {winner_of(f"10.0.10.{last}")}
        assert len(winners) == 1 and None not in winners


def test_dual_stack_moves_as_one_elected_by_the_first_ip() -> None:
    owner = winner_of("10.0.10.10", "fd00::10")
    p = plan(view(owner or "", config(), web("10.0.10.10", "fd00::10")))
    assert [str(o.ip) for o in p.owned] == ["10.0.10.10", "fd00::10"]


def test_a_dead_winner_is_replaced_by_the_next_in_ranking() -> None:
    first = winner_of("10.0.10.10")
    assert first is not None
    second = winner_of("10.0.10.10", members=tuple(n for n in NODES if n != first))
    assert second not in (None, first)


def test_pool_without_advertisement_is_not_announced_and_says_why() -> None:
    assignment = Assignment(service=ServiceKey(namespace="default", name="orphan"), ips=(ip("10.0.20.1"),),
                            pool="orphan-pool")  # fmt: skip
    p = plan(view("n1", config(), assignment))
    assert p.owned == ()
    assert p.elections[0].not_announced_reason == NO_ADVERTISEMENT.format(pool="orphan-pool")


def test_node_selectors_limit_the_candidates() -> None:
    adv = L2Advertisement(name="l2", ip_address_pools=("first-pool",),
                          node_selectors=(LabelSelector(match_labels=(("edge", "yes"),)),))  # fmt: skip
    cfg = config(advs=(adv,), node_labels={"n3": {"edge": "yes"}})
    assert winner_of("10.0.10.10", cfg=cfg) == "n3"
    p = plan(view("n1", cfg, web("10.0.10.10")))
    assert dict(p.elections[0].election.excluded)["n1"].startswith("not selected")  # type: ignore[union-attr]


def test_advertisement_interfaces_restrict_where_it_is_answered() -> None:
    adv = L2Advertisement(name="l2", ip_address_pools=("first-pool",), interfaces=("eth1",))
    cfg = config(advs=(adv,))
    owner = winner_of("10.0.10.10", cfg=cfg) or ""
    a, _host, responder, _ = announcer(owner)
    a.start()
    a.update(view(owner, cfg, web("10.0.10.10")))
    assert responder.owned4 == {ip("10.0.10.10").packed: frozenset({"eth1"})}


def test_takeover_answers_on_suitable_interfaces_and_bursts_both_forms() -> None:
    owner = winner_of("10.0.10.10") or ""
    a, host, responder, _ = announcer(owner)
    a.start()
    assert sorted(responder.ports) == ["eth0", "eth1"]  # veth9 matches the exclude list
    assert responder.owned4 == {}
    a.update(view(owner, config(), web("10.0.10.10")))
    assert responder.owned4 == {ip("10.0.10.10").packed: frozenset({"eth0", "eth1"})}
    # The burst's first frames go out inside update(), before any tick.
    sent = {(name, frames.parse_arp(f).op) for name, f in responder.sent}  # type: ignore[union-attr]
    assert sent == {("eth0", 1), ("eth0", 2), ("eth1", 1), ("eth1", 2)}
    assert host.announced() == {("default/web", "10.0.10.10")}
    assert host.counters[(GRATUITOUS, (("ip", "10.0.10.10"),))] == 4
    status = a.status()
    assert status["sockets_ready"] is True
    assert status["announcements"][0]["interfaces"] == ["eth0", "eth1"]
    assert status["elections"][0]["winner"] == owner


def test_losing_withdraws_answers_and_the_metric() -> None:
    owner = winner_of("10.0.10.10") or ""
    a, host, responder, _ = announcer(owner)
    a.start()
    a.update(view(owner, config(), web("10.0.10.10")))
    a.update(view(owner, config(), web("10.0.10.10"), members=tuple(n for n in NODES if n != owner)))
    assert responder.owned4 == {}
    assert host.announced() == set()
    assert a.status()["announcements"] == []


def test_many_ips_lost_or_stopped_at_once_are_withdrawn_in_one_publish() -> None:
    # Each publish is a whole set_owned (and a kernel map sync): one per IP made a stop O(n^2).
    owner = NODES[0]
    ips = [f"10.0.10.{last}" for last in range(10, 40)]
    services = [Assignment(service=ServiceKey(namespace="default", name=f"s{last}"), ips=(ip(text),),
                           pool="first-pool") for last, text in enumerate(ips)]  # fmt: skip
    cfg = dataclasses.replace(config(bind_local=True), services=tuple(
        Service(namespace="default", name=s.service.name, ip_families=(4,)) for s in services))  # fmt: skip
    for ending in ("lost", "stopped"):
        a, host, responder, binder = announcer(owner)
        a.start()
        a.update(view(owner, cfg, *services, members=(owner,)))
        assert len(responder.owned4) == len(ips) and len(host.announced()) == len(ips)
        responder.published.clear()
        if ending == "lost":
            a.update(view(owner, cfg, *services, members=(NODES[1],)))
        else:
            a.stop(handover=False)
        assert responder.published[0] == 0, ending  # the first publish already drops every one of them
        assert len(responder.published) <= 2, ending
        assert host.announced() == set() and binder.bound == set(), ending


def test_a_loser_never_answers() -> None:
    owner = winner_of("10.0.10.10")
    loser = next(n for n in NODES if n != owner)
    a, host, responder, _ = announcer(loser)
    a.start()
    a.update(view(loser, config(), web("10.0.10.10")))
    a.tick(1e9)
    assert responder.owned4 == {} and responder.sent == [] and host.announced() == set()


def test_ipv6_takeover_sends_unsolicited_na() -> None:
    owner = winner_of("fd00::10") or ""
    a, _, responder, _ = announcer(owner, links=(ETH0,))
    a.start()
    a.update(view(owner, config(), web("fd00::10")))
    a.tick(1e9)
    assert responder.owned6 == {ip("fd00::10").packed: frozenset({"eth0"})}
    packet = frames.parse_ndp(responder.sent[0][1])
    assert packet is not None and packet.flags == frames.NA_FLAG_OVERRIDE and packet.target == ip("fd00::10").packed


def test_counters_are_flushed_as_deltas_and_duplicates_reported() -> None:
    owner = winner_of("10.0.10.10") or ""
    a, host, responder, _ = announcer(owner)
    a.start()
    a.update(view(owner, config(), web("10.0.10.10")))
    packed = ip("10.0.10.10").packed
    responder.requests[packed] = 5
    a.tick(1.0)
    responder.requests[packed] = 7
    a.tick(2.0)
    assert host.counters[(REQUESTS, (("ip", "10.0.10.10"),))] == 7
    responder.duplicates.append(Duplicate(ip=packed, mac=bytes.fromhex("0200000000ff"), interface="eth0"))
    a.tick(3.0)
    assert host.counters[(DUPLICATES, (("ip", "10.0.10.10"),))] == 1
    assert a.status()["duplicates"][0]["mac"] == "02:00:00:00:00:ff"


@pytest.mark.parametrize(
    ("bind_local", "annotated", "mode", "expected"),
    [
        pytest.param(False, False, "standalone", False, id="off"),
        pytest.param(True, False, "standalone", True, id="settings"),
        pytest.param(False, True, "standalone", True, id="annotation"),
        pytest.param(True, False, "kubernetes", False, id="never-in-kubernetes"),
    ],
)
def test_local_bind_is_opt_in_and_removed_on_stop(bind_local: bool, annotated: bool, mode: str,
                                                  expected: bool) -> None:  # fmt: skip
    annotations = (("metalloid.io/bind-local", "true"),) if annotated else ()
    adv = L2Advertisement(name="l2", ip_address_pools=("first-pool",), annotations=annotations)
    cfg = config(advs=(adv,), bind_local=bind_local)
    owner = winner_of("10.0.10.10", cfg=cfg) or ""
    a, _, _, binder = announcer(owner)
    binder.bound.add(ip("10.0.10.77"))  # a crashed run's leftover
    a.start()
    assert binder.bound == set()
    v = view(owner, cfg, web("10.0.10.10"))
    a.update(AnnouncerView(node_name=owner, mode=mode, config=cfg, assignments=v.assignments, members=v.members))
    assert binder.bound == ({ip("10.0.10.10")} if expected else set())
    a.stop(handover=True)
    assert binder.bound == set()


def test_link_coming_back_is_announced_again() -> None:
    owner = winner_of("10.0.10.10") or ""
    a, _, responder, _ = announcer(owner, links=(ETH0,))
    a.start()
    a.update(view(owner, config(), web("10.0.10.10")))
    for t in (0.0, 2.0, 4.0, 6.0, 8.0):
        a.tick(1e6 + t)  # the burst runs out
    responder.sent.clear()
    down = Link(name="eth0", index=2, mac=ETH0.mac, flags=IFF_BROADCAST)
    a._links_changed((down,))
    a.tick(1e6 + 10)
    assert responder.sent == []
    a._links_changed((ETH0,))
    a.tick(1e6 + 11)
    assert len(responder.sent) == 2


class WallClock:
    def __init__(self, now: float = 1.7e9) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def duplicates_announcer(owner: str, wall: WallClock) -> tuple[Layer2Announcer, FakeResponder]:
    responder = FakeResponder()
    a = Layer2Announcer(
        RecordingHost(node_name=owner), responder=responder, binder=FakeBinder(), watch_links=False,  # type: ignore[arg-type]
        list_links=lambda: (ETH0,), exclude=(), wall_clock=wall,
    )  # fmt: skip
    a.start()
    return a, responder


def claim(responder: FakeResponder, address: str, mac_byte: int) -> None:
    mac = bytes.fromhex("02000000") + bytes([0, mac_byte])
    responder.duplicates.append(Duplicate(ip=ip(address).packed, mac=mac, interface="eth0"))


def reported(a: Layer2Announcer) -> list[tuple[str, str]]:
    return sorted((d["ip"], d["mac"]) for d in a.status()["duplicates"])


def test_duplicates_of_an_ip_no_longer_announced_leave_the_status() -> None:
    owner = winner_of("10.0.10.10") or ""
    wall = WallClock()
    a, responder = duplicates_announcer(owner, wall)
    a.update(view(owner, config(), web("10.0.10.10")))
    claim(responder, "10.0.10.10", 0xFF)
    a.tick(1.0)
    assert reported(a) == [("10.0.10.10", "02:00:00:00:00:ff")]
    a.update(view(owner, config()))  # the Service is gone
    a.tick(2.0)
    assert reported(a) == []


def test_duplicates_not_seen_for_five_minutes_age_out() -> None:
    owner = winner_of("10.0.10.10") or ""
    wall = WallClock()
    a, responder = duplicates_announcer(owner, wall)
    a.update(view(owner, config(), web("10.0.10.10")))
    claim(responder, "10.0.10.10", 0x01)
    a.tick(1.0)
    wall.now += 200.0
    claim(responder, "10.0.10.10", 0x02)
    a.tick(2.0)
    wall.now += 200.0  # 0x01 last seen 400 s ago, 0x02 200 s ago
    a.tick(3.0)
    assert reported(a) == [("10.0.10.10", "02:00:00:00:00:02")]


def test_duplicates_kept_are_bounded_newest_first() -> None:
    owner = winner_of("10.0.10.10") or ""
    wall = WallClock()
    a, responder = duplicates_announcer(owner, wall)
    a.update(view(owner, config(), web("10.0.10.10")))
    packed = ip("10.0.10.10").packed
    for n in range(MAX_DUPLICATES + 50):  # a flood of forged MACs, within five minutes
        wall.now += 0.01
        responder.duplicates.append(Duplicate(ip=packed, mac=n.to_bytes(6, "big"), interface="eth0"))
        a.tick(float(n))
    macs = {d["mac"] for d in a.status()["duplicates"]}
    assert len(macs) == MAX_DUPLICATES
    assert frames.mac_text((MAX_DUPLICATES + 49).to_bytes(6, "big")) in macs, "the newest claim is kept"


def test_per_ip_counters_of_a_withdrawn_ip_are_flushed_then_forgotten() -> None:
    owner = winner_of("10.0.10.10") or ""
    a, host, responder, _ = announcer(owner)
    a.start()
    a.update(view(owner, config(), web("10.0.10.10")))
    packed = ip("10.0.10.10").packed
    responder.requests[packed], responder.responses[packed] = 5, 5
    a.tick(1.0)
    responder.requests[packed], responder.responses[packed] = 8, 7  # answered just before the withdraw
    a.update(view(owner, config()))
    for t in (2.0, 3.0, 4.0):
        a.tick(t)
    assert host.counters[(REQUESTS, (("ip", "10.0.10.10"),))] == 8, "the last delta is flushed"
    assert packed not in responder.requests and packed not in responder.responses
    assert packed not in a._counts.flushed[REQUESTS] and packed not in a._counts.flushed[RESPONSES]
    # Owned again: the responder counts from zero, and the series keeps growing from its last value.
    a.update(view(owner, config(), web("10.0.10.10")))
    responder.requests[packed] = 2
    a.tick(5.0)
    assert host.counters[(REQUESTS, (("ip", "10.0.10.10"),))] == 10


def test_a_winner_without_the_named_interface_reports_a_failure_not_an_announcement() -> None:
    from supervisor.announcing.api import announcer_state

    adv = L2Advertisement(name="l2", ip_address_pools=("first-pool",), interfaces=("eth7",))
    cfg = config(advs=(adv,))
    owner = winner_of("10.0.10.10", cfg=cfg) or ""
    a, _host, responder, _ = announcer(owner)
    a.start()
    a.update(view(owner, cfg, web("10.0.10.10")))
    assert responder.owned4 == {}
    state = announcer_state("layer2", a.status())
    assert state.announcements == ()
    assert [(str(f.service), str(f.ip), f.node) for f in state.failures] == [("default/web", "10.0.10.10", owner)]
    loser = next(n for n in NODES if n != owner)
    b, *_ = announcer(loser)
    b.start()
    b.update(view(loser, cfg, web("10.0.10.10")))
    assert announcer_state("layer2", b.status()).failures == ()  # losing is not failing


def test_the_status_says_which_interfaces_each_ip_is_answered_on() -> None:
    from supervisor.announcing.api import announcer_state

    adv = L2Advertisement(name="l2", ip_address_pools=("first-pool",), interfaces=("eth1",))
    cfg = config(advs=(adv,))
    owner = winner_of("10.0.10.10", cfg=cfg) or ""
    a, *_ = announcer(owner)
    a.start()
    a.update(view(owner, cfg, web("10.0.10.10")))
    state = announcer_state("layer2", a.status())
    assert [(str(x.service), str(x.ip), x.node, x.interfaces) for x in state.announcements] == [
        ("default/web", "10.0.10.10", owner, ("eth1",))
    ]
    assert state.failures == ()
