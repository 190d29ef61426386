"""The BGP stub: BGP's policy over the plugin interface, and proof the interface suffices.

A real BGP speaker needs, per session: peer address and port, both ASNs, router
id, source address, hold/keepalive times, password, multihop, VRF; per route:
prefix (after aggregation), next hop, local preference, communities. These tests
show the stub computes each of them from the host's facts alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from plugins.bgp import validation
from plugins.bgp.planning import plan
from plugins.bgp_stub.announcer import SPEAKER_ANNOUNCED, BGPStubAnnouncer
from supervisor.allocating.results import Assignment
from supervisor.announcing.api import Announcer, AnnouncerRegistry, AnnouncerView
from supervisor.config.model import (
    AddressRange,
    BGPAdvertisement,
    BGPPeer,
    Config,
    IPAddressPool,
    LabelSelector,
    Node,
    Service,
    ServiceKey,
    labels_of,
)
from tests.fakes import RecordingHost

ip = ipaddress.ip_address
WEB = ServiceKey(namespace="default", name="web")
DNS = ServiceKey(namespace="default", name="dns")


def pool(name: str = "bgp-pool", first: str = "192.0.2.0", last: str = "192.0.2.255") -> IPAddressPool:
    return IPAddressPool(name=name, addresses=(AddressRange(first=ip(first), last=ip(last), text=f"{first}-{last}"),))


def peer(name: str = "tor", address: str = "198.51.100.1", **kw: object) -> BGPPeer:
    return BGPPeer(name=name, my_asn=64500, peer_asn=64501, peer_address=ip(address), **kw)  # type: ignore[arg-type]


def nodes() -> tuple[Node, ...]:
    return (
        Node(name="n1", labels=labels_of({"rack": "a"}), addresses=(ip("198.51.100.11"),)),
        Node(name="n2", labels=labels_of({"rack": "b"}), addresses=(ip("198.51.100.12"),)),
    )


def view(config: Config, node: str = "n1", assignments: Sequence[Assignment] | None = None) -> AnnouncerView:
    if assignments is None:
        assignments = (
            Assignment(service=WEB, ips=(ip("192.0.2.10"),), pool="bgp-pool"),
            Assignment(service=DNS, ips=(ip("192.0.2.11"),), pool="bgp-pool"),
        )
    return AnnouncerView(node_name=node, mode="standalone", config=config, assignments=tuple(assignments),
                         members=frozenset({"n1", "n2"}))


def config(*advs: BGPAdvertisement, peers: Sequence[BGPPeer] = (), pools: Sequence[IPAddressPool] = ()) -> Config:
    return Config(
        pools=tuple(pools) or (pool(),),
        bgp_peers=tuple(peers) or (peer(),),
        bgp_advertisements=advs or (BGPAdvertisement(name="adv"),),
        services=(Service(namespace="default", name="web"), Service(namespace="default", name="dns")),
        nodes=nodes(),
    )


def test_every_eligible_node_announces_no_election() -> None:
    cfg = config()
    for node in ("n1", "n2"):
        routes = plan(view(cfg, node)).routes
        assert [str(r.prefix) for r in routes] == ["192.0.2.10/32", "192.0.2.11/32"]


def test_advertisement_node_selectors_restrict_nodes() -> None:
    only_a = BGPAdvertisement(name="adv", node_selectors=(LabelSelector(match_labels=(("rack", "a"),)),))
    cfg = config(only_a)
    assert plan(view(cfg, "n1")).routes
    result = plan(view(cfg, "n2"))
    assert not result.routes
    assert any("nodeSelectors" in why for _, why in result.not_advertised)


def test_peer_node_selectors_restrict_sessions() -> None:
    cfg = config(peers=[peer(node_selectors=(LabelSelector(match_labels=(("rack", "b"),)),))])
    assert plan(view(cfg, "n1")).sessions == ()
    assert [s.peer for s in plan(view(cfg, "n2")).sessions] == ["tor"]


def test_aggregation_merges_services_into_one_prefix() -> None:
    cfg = config(BGPAdvertisement(name="adv", aggregation_length=24))
    routes = plan(view(cfg)).routes
    assert len(routes) == 1
    assert str(routes[0].prefix) == "192.0.2.0/24"
    assert routes[0].services == (DNS, WEB)


def test_advertisement_peers_limit_where_routes_go() -> None:
    cfg = config(BGPAdvertisement(name="adv", peers=("spine",)), peers=[peer("tor"), peer("spine", "198.51.100.2")])
    assert {r.peer for r in plan(view(cfg)).routes} == {"spine"}


def test_uncovered_pool_is_not_advertised_and_says_why() -> None:
    cfg = config(BGPAdvertisement(name="adv", ip_address_pools=("other",)))
    result = plan(view(cfg))
    assert result.routes == ()
    assert (WEB, "no BGPAdvertisement covers pool bgp-pool") in result.not_advertised


def test_interface_carries_everything_a_bgp_speaker_needs() -> None:
    full_peer = peer(peer_port=1179, router_id="10.255.0.1", source_address=ip("198.51.100.11"),
                     hold_time_seconds=9.0, password="s3cret", ebgp_multihop=True, vrf="red")
    adv = BGPAdvertisement(name="adv", local_pref=200, communities=("64500:100",))
    result = plan(view(config(adv, peers=[full_peer])))
    (session,) = result.sessions
    assert (session.peer_address, session.peer_port, session.peer_asn, session.my_asn) == (
        ip("198.51.100.1"), 1179, 64501, 64500)
    assert (session.router_id, session.source_address, session.vrf) == ("10.255.0.1", ip("198.51.100.11"), "red")
    assert (session.hold_time_seconds, session.keepalive_time_seconds) == (9.0, 3.0)
    assert session.password_set and session.ebgp_multihop
    route = result.routes[0]
    assert (route.next_hop, route.local_pref, route.communities) == (ip("198.51.100.11"), 200, ("64500:100",))


def test_next_hop_defaults_to_the_node_address() -> None:
    assert plan(view(config())).routes[0].next_hop == ip("198.51.100.11")


def test_announcer_lifecycle_status_and_metrics() -> None:
    host = RecordingHost(node="n1")
    announcer = BGPStubAnnouncer(host)
    assert isinstance(announcer, Announcer)
    announcer.start()
    announcer.update(view(config()))
    status = announcer.status()
    assert status["stub"] is True
    assert [r["prefix"] for r in status["routes"]] == ["192.0.2.10/32", "192.0.2.11/32"]
    assert status["sessions"][0]["state"].startswith("Idle")
    assert len(host.series(SPEAKER_ANNOUNCED)) == 2
    peer = (("peer", "198.51.100.1:179"),)
    session = (*peer, ("vrf", "default"))  # MetalLB's FRR-mode labels, as the bgp announcer's
    # No session (a stub): nothing advertised, both routes pending, as MetalLB says with a session down.
    assert host.gauges[("metallb_bgp_session_up", session)] == 0
    assert host.gauges[("metallb_bgp_announced_prefixes_total", session)] == 0
    assert host.gauges[("metallb_bgp_pending_prefixes_total", peer)] == 2
    # Losing a service withdraws its series: cardinality does not grow forever.
    announcer.update(view(config(), assignments=[Assignment(service=WEB, ips=(ip("192.0.2.10"),), pool="bgp-pool")]))
    assert len(host.series(SPEAKER_ANNOUNCED)) == 1
    announcer.stop(handover=True)
    assert host.series(SPEAKER_ANNOUNCED) == {}
    assert host.series("metallb_bgp_session_up") == {} and host.series("metallb_bgp_pending_prefixes_total") == {}
    assert announcer.status()["routes"] == []


def test_registers_under_protocol_bgp_stub() -> None:
    from plugins.bgp_stub import plugin

    registry = AnnouncerRegistry()
    plugin.metalloid_register_announcers(registry)
    assert registry.names() == ("bgp-stub",)


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        pytest.param(config(BGPAdvertisement(name="adv", aggregation_length=16)),
                     "spec.aggregationLength: 16 is shorter than the /24", id="aggregation-shorter-than-pool"),
        pytest.param(config(peers=[BGPPeer(name="p", my_asn=0, peer_asn=1, peer_address=ip("198.51.100.1"))]),
                     "spec.myASN: 0 is not a valid AS number", id="bad-asn"),
        pytest.param(config(peers=[peer(hold_time_seconds=2.0)]), "spec.holdTime: 2s", id="hold-time-below-3s"),
        pytest.param(config(BGPAdvertisement(name="adv", peers=("nope",))), "BGPPeer 'nope' does not exist",
                     id="unknown-peer"),
    ],
)
def test_validation(cfg: Config, needle: str) -> None:
    messages = [str(d) for d in validation.validate(cfg)]
    assert any(needle in m for m in messages), messages


def test_valid_config_has_no_diagnostics() -> None:
    assert validation.validate(config(BGPAdvertisement(name="adv", aggregation_length=24))) == []
