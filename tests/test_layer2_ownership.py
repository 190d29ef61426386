"""The pure parts the layer 2 announcer is built from: ownership, takeover, duplicates, stats.

The announcer's own tests (test_layer2_announcer.py) drive them through the
shell; these pin each concept alone, with no sockets and no announcer.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from plugins.layer2 import duplicates, ownership, takeover
from plugins.layer2.ownership import Held
from plugins.layer2.planning import Ownership, Plan, plan
from plugins.layer2.stats import REQUESTS, RESPONSES, Counts
from supervisor.api import IPAddress, ServiceKey
from tests.test_layer2_announcer import NODES, config, view, web, winner_of

WEB = ServiceKey(namespace="default", name="web")
API = ServiceKey(namespace="default", name="api")


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def own(text: str, *services: ServiceKey, interfaces: tuple[str, ...] = ()) -> Ownership:
    return Ownership(ip=ip(text), services=services or (WEB,), interfaces=interfaces, bind_local=False)


def test_an_ownership_without_interfaces_is_held_on_every_open_one_and_named_ones_only_when_open() -> None:
    p = Plan(elections=(), owned=(own("10.0.0.1"), own("10.0.0.2", interfaces=("eth1", "eth9"))),
             named_interfaces=frozenset({"eth1", "eth9"}))  # fmt: skip
    held = ownership.wanted(p, {"eth1", "eth0"})
    assert held[ip("10.0.0.1")].interfaces == ("eth0", "eth1")
    assert held[ip("10.0.0.2")].interfaces == ("eth1",)


def test_a_yielded_interface_is_dropped_and_an_ip_left_without_one_is_withdrawn() -> None:
    before = {ip("10.0.0.1"): Held(ownership=own("10.0.0.1"), interfaces=("eth0",))}
    want = ownership.without(before, {(ip("10.0.0.1"), "eth0")})
    assert want[ip("10.0.0.1")].interfaces == ()
    assert ownership.withdrawn(before, want) == [ip("10.0.0.1")]
    assert ownership.changes(before, want) == []
    assert ownership.answering(want) == {}


def test_changes_name_the_interfaces_and_services_that_start_and_stop() -> None:
    before = {ip("10.0.0.1"): Held(ownership=own("10.0.0.1", WEB), interfaces=("eth0", "eth1"))}
    want = {ip("10.0.0.1"): Held(ownership=own("10.0.0.1", API), interfaces=("eth1", "eth2")),
            ip("10.0.0.2"): Held(ownership=own("10.0.0.2"), interfaces=("eth0",))}  # fmt: skip
    first, second = ownership.changes(before, want)
    assert (first.started, first.stopped, first.announced, first.unannounced) == (("eth2",), ("eth0",), (API,), (WEB,))
    assert (second.started, second.stopped, second.announced, second.unannounced) == (("eth0",), (), (WEB,), ())
    assert ownership.withdrawn(before, want) == []


def test_the_responders_maps_split_by_family() -> None:
    v4, v6 = ownership.packed({ip("10.0.0.1"): ("eth0",), ip("fd00::1"): ("eth0", "eth1")})
    assert v4 == {ip("10.0.0.1").packed: frozenset({"eth0"})}
    assert v6 == {ip("fd00::1").packed: frozenset({"eth0", "eth1"})}


def test_a_takeover_is_an_ip_another_node_won_before_members_changed() -> None:
    address = "10.0.10.10"
    owner = winner_of(address) or ""
    heir = winner_of(address, members=tuple(n for n in NODES if n != owner)) or ""
    before = view(heir, config(), web(address))
    after = dataclasses.replace(view(heir, config(), web(address), members=tuple(n for n in NODES if n != owner)),
                                members_changed_at=5.0)  # fmt: skip
    noted = takeover.noted(node=heir, previous_view=before, previous_plan=plan(before), view=after,
                           current=plan(after), owned=(), now=6.0)  # fmt: skip
    assert noted == {ip(address): (5.0, 6.0)}
    assert takeover.from_leavers(previous_view=before, previous_plan=plan(before), view=after, current=plan(after))
    # A first view (a start) is not a takeover, nor an IP already held.
    assert takeover.noted(node=heir, previous_view=None, previous_plan=None, view=after, current=plan(after),
                          owned=(), now=6.0) == {}  # fmt: skip
    assert takeover.noted(node=heir, previous_view=before, previous_plan=plan(before), view=after,
                          current=plan(after), owned=(ip(address),), now=6.0) == {}  # fmt: skip


def test_a_takeover_held_up_longer_than_the_window_is_not_timed() -> None:
    taken = {ip("10.0.0.1"): (5.0, 6.0), ip("10.0.0.2"): (5.0, 6.0)}
    kept = takeover.forget(taken, wanted={ip("10.0.0.1"): None}, now=10.0, window=5.0)
    assert kept == {ip("10.0.0.1"): (5.0, 6.0)}
    assert takeover.forget(taken, wanted=taken, now=11.5, window=5.0) == {}
    assert takeover.seconds((5.0, 6.0), now=6.25, window=5.0) == 1.25
    assert takeover.seconds((5.0, 6.0), now=11.5, window=5.0) is None


def test_a_duplicate_is_logged_once_per_window_and_counted_every_time() -> None:
    s = duplicates.Sightings()
    logged = [s.seen(ip="10.0.0.1", mac="02:00:00:00:00:02", interface="eth0", wall=t) for t in (0.0, 1.0, 10.5)]
    assert logged == [True, False, True]
    assert s.report() == [{"ip": "10.0.0.1", "mac": "02:00:00:00:00:02", "interface": "eth0", "count": 3,
                           "last_seen": 10.5}]  # fmt: skip
    s.prune({"10.0.0.1"}, wall=10.5 + duplicates.KEEP_SECONDS + 1)
    assert s.report() == []


def test_counter_deltas_grow_and_a_withdrawn_ips_counts_are_forgotten_one_flush_later() -> None:
    counts, packed = Counts(), ip("10.0.0.1").packed
    live = {packed: 5}
    assert counts.deltas(REQUESTS, live) == [(packed, 5)]
    live[packed] = 7
    assert counts.deltas(REQUESTS, live) == [(packed, 2)]
    counts.forget(set(), (live,))
    assert packed in live, "kept one flush: the responder may still be counting it"
    counts.forget(set(), (live,))
    assert packed not in live and packed not in counts.flushed[REQUESTS] and counts.flushed[RESPONSES] == {}
