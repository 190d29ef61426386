"""BGPAdvertisement serviceSelectors as MetalLB decides them (speaker/bgp_controller.go):
`bgpAdsForService` (an advertisement with serviceSelectors carries only the Services one of them
matches; none = every Service), `ShouldAnnounce`'s "noMatchingAdvertisement" and
"conflictingAdvertisements" (`checkBGPAdvConflicts`), and the interplay with ipAddressPools,
nodeSelectors and peers. The cases of TestBGPAdsForService, TestCheckBGPAdvConflicts and
TestShouldAnnounceBGPServiceSelectors are ported as planning cases (pure: no FRR, no sockets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from plugins.bgp.planning import Plan, conflicting, plan
from supervisor.allocating.allocator import allocate
from supervisor.allocating.results import Assignment
from supervisor.announcing.api import AnnouncerView
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
from supervisor.config.parsing import parse_objects
from supervisor.serving.snapshot import offline_status

ip = ipaddress.ip_address
NGINX = ServiceKey(namespace="default", name="nginx")
APACHE = ServiceKey(namespace="default", name="apache")
POOL = IPAddressPool(name="pool", addresses=(
    AddressRange(first=ip("10.20.30.0"), last=ip("10.20.30.255"), text="10.20.30.0/24"),))


def app(value: str) -> tuple[LabelSelector, ...]:
    return (LabelSelector(match_labels=(("app", value),)),)


def rack(value: str) -> tuple[LabelSelector, ...]:
    return (LabelSelector(match_labels=(("rack", value),)),)


def adv(name: str, **kw: object) -> BGPAdvertisement:
    return BGPAdvertisement(name=name, **kw)  # type: ignore[arg-type]


def peer(name: str, address: str) -> BGPPeer:
    return BGPPeer(name=name, my_asn=64500, peer_asn=64501, peer_address=ip(address))


def config(*advs: BGPAdvertisement, peers: Sequence[BGPPeer] = ()) -> Config:
    return Config(
        pools=(POOL,),
        bgp_peers=tuple(peers) or (peer("peer1", "198.51.100.1"),),
        bgp_advertisements=advs,
        services=(Service(namespace="default", name="nginx", labels=labels_of({"app": "nginx"})),
                  Service(namespace="default", name="apache", labels=labels_of({"app": "apache"}))),
        nodes=(Node(name="nodeA", labels=labels_of({"rack": "a"}), addresses=(ip("198.51.100.11"),)),
               Node(name="nodeB", labels=labels_of({"rack": "b"}), addresses=(ip("198.51.100.12"),))),
    )


def planned(cfg: Config, node: str = "nodeA") -> Plan:
    assignments = (Assignment(service=NGINX, ips=(ip("10.20.30.1"),), pool="pool"),
                   Assignment(service=APACHE, ips=(ip("10.20.30.2"),), pool="pool"))
    return plan(AnnouncerView(node_name=node, mode="standalone", config=cfg, assignments=assignments,
                              members=frozenset({"nodeA", "nodeB"})))


def advertised(result: Plan) -> dict[ServiceKey, set[str]]:
    """Service -> the peers it goes to from this node."""
    out: dict[ServiceKey, set[str]] = {}
    for route in result.routes:
        for service in route.services:
            out.setdefault(service, set()).add(route.peer)
    return out


@pytest.mark.parametrize(
    ("advs", "node", "expected"),
    [
        ((adv("ad1"),), "nodeA", {NGINX, APACHE}),
        ((adv("ad1", service_selectors=app("nginx")),), "nodeA", {NGINX}),
        ((adv("ad1", service_selectors=app("apache")),), "nodeA", {APACHE}),
        ((adv("ad1", node_selectors=rack("b")),), "nodeA", set()),
        ((adv("ad1", service_selectors=app("apache")), adv("ad2", service_selectors=app("nginx")), adv("ad3")),
         "nodeA", {NGINX, APACHE}),
        ((adv("ad1", service_selectors=app("apache") + app("nginx")),), "nodeA", {NGINX, APACHE}),
        ((adv("ad1", service_selectors=app("nginx"), node_selectors=rack("b")),
          adv("ad2", service_selectors=app("apache"))), "nodeA", {APACHE}),
        ((adv("ad1", service_selectors=app("nginx"), node_selectors=rack("b")),
          adv("ad2", service_selectors=app("apache"))), "nodeB", {NGINX, APACHE}),
        ((adv("ad1", service_selectors=app("nginx"), ip_address_pools=("other",)),), "nodeA", set()),
    ],
    ids=["empty-selectors-match-all", "matching-selector", "non-matching-selector", "wrong-node",
         "multiple-ads-some-match", "or-of-selectors", "node-selectors-still-restrict",
         "each-ad-on-its-own-nodes", "pool-not-covered"],
)
def test_ads_for_service(advs: tuple[BGPAdvertisement, ...], node: str, expected: set[ServiceKey]) -> None:
    """TestBGPAdsForService, as what this node advertises."""
    assert set(advertised(planned(config(*advs), node))) == expected


def test_a_service_no_advertisement_selects_is_not_advertised_and_says_why() -> None:
    """ShouldAnnounce: "noMatchingAdvertisement"."""
    result = planned(config(adv("ad1", service_selectors=app("nginx"))))
    reasons = dict(result.not_advertised)
    assert APACHE not in advertised(result)
    assert reasons[APACHE] == ("no BGPAdvertisement for pool pool selects this Service: their spec.serviceSelectors "
                               "do not match its labels; add a matching label or an advertisement without "
                               "serviceSelectors")
    assert NGINX not in reasons


def test_selected_advertisements_keep_their_own_peers_and_treatment() -> None:
    """An advertisement with serviceSelectors is a whole advertisement: its peers, localPref and communities."""
    cfg = config(adv("to-spine", service_selectors=app("nginx"), peers=("spine",), local_pref=200,
                     communities=("64500:1",)),
                 adv("everyone", peers=("tor",)),
                 peers=[peer("tor", "198.51.100.1"), peer("spine", "198.51.100.2")])
    result = planned(cfg)
    assert advertised(result) == {NGINX: {"tor", "spine"}, APACHE: {"tor"}}
    (spine,) = [r for r in result.routes if r.peer == "spine"]
    assert (str(spine.prefix), spine.local_pref, spine.communities, spine.services) == (
        "10.20.30.1/32", 200, ("64500:1",), (NGINX,))


@pytest.mark.parametrize(
    ("advs", "expect_conflict"),
    [
        ((adv("ad1", local_pref=100), adv("ad2", local_pref=100, service_selectors=app("nginx"))), False),
        ((adv("ad1", local_pref=100), adv("ad2", local_pref=200, service_selectors=app("nginx"))), True),
        ((adv("ad1", local_pref=100, peers=("peer1",)),
          adv("ad2", local_pref=200, peers=("peer2",), service_selectors=app("nginx"))), False),
        ((adv("ad1", local_pref=100, peers=("peer1",)),
          adv("ad2", local_pref=200, peers=("peer2", "peer1"), service_selectors=app("nginx"))), True),
        ((adv("ad1", local_pref=100, peers=("peer1", "peer3")),
          adv("ad2", local_pref=200, peers=("peer2", "peer1"), service_selectors=app("nginx"))), True),
        ((adv("ad1", local_pref=100), adv("ad2", local_pref=200, peers=("peer1",),
                                          service_selectors=app("nginx"))), True),
        ((adv("ad1", local_pref=100, peers=("peer1",)), adv("ad2", local_pref=200,
                                                            service_selectors=app("nginx"))), True),
        ((adv("ad1", local_pref=100),), False),
        ((), False),
        # unset localPref is MetalLB's 0
        ((adv("ad1"), adv("ad2", local_pref=0, service_selectors=app("nginx"))), False),
        # different aggregation for the pool's only family: different prefixes, no conflict
        ((adv("ad1", local_pref=100, aggregation_length=24),
          adv("ad2", local_pref=200, service_selectors=app("nginx"))), False),
        # only the IPv6 length differs, the pool is IPv4: same prefix, conflict
        ((adv("ad1", local_pref=100, aggregation_length_v6=64),
          adv("ad2", local_pref=200, service_selectors=app("nginx"))), True),
        # neither selects Services: not the speaker's to decide, the config is refused (test_bgp_local_pref_rule.py)
        ((adv("ad1", local_pref=100), adv("ad2", local_pref=200)), False),
    ],
    ids=["same-local-pref", "different-local-pref", "different-peers", "peers-subset", "peers-overlap",
         "ad1-peers-empty", "ad2-peers-empty", "single-ad", "no-ads", "unset-is-zero",
         "aggregation-differs", "v6-aggregation-irrelevant", "no-selectors-no-refusal"],
)
def test_check_bgp_adv_conflicts(advs: tuple[BGPAdvertisement, ...], expect_conflict: bool) -> None:
    """TestCheckBGPAdvConflicts (the advertisements already select this node; the node-set cases of
    MetalLB's table are the planner's node filter, covered by test_conflict_only_among_this_node_s)."""
    reason = conflicting(list(advs), POOL)
    assert (reason is not None) == expect_conflict
    if reason is not None:
        assert "ad1 and ad2" in reason and "conflictingAdvertisements" in reason


def test_conflicting_advertisements_keep_the_service_off_this_node() -> None:
    """TestShouldAnnounceBGPServiceSelectors, "conflicting local prefs": nginx (both match) is not
    advertised at all from this node; apache (only ad1 matches) is."""
    result = planned(config(adv("ad1", local_pref=100), adv("ad2", local_pref=200, service_selectors=app("nginx"))))
    assert set(advertised(result)) == {APACHE}
    assert "conflictingAdvertisements" in dict(result.not_advertised)[NGINX]


def test_conflict_only_among_this_node_s_advertisements() -> None:
    """MetalLB's "different nodes" case: ad2 does not select nodeA, so nodeA has no conflict; nodeB has."""
    cfg = config(adv("ad1", local_pref=100), adv("ad2", local_pref=200, service_selectors=app("nginx"),
                                                 node_selectors=rack("b")))
    assert set(advertised(planned(cfg, "nodeA"))) == {NGINX, APACHE}
    assert set(advertised(planned(cfg, "nodeB"))) == {APACHE}


def test_offline_explain_shows_the_selection() -> None:
    """`metalloid explain --config`: only the selecting advertisements; none selecting says why."""
    objects = [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "pool"},
         "spec": {"addresses": ["10.20.30.0/24"]}},
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "peer1"},
         "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1"}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "web-only"},
         "spec": {"serviceSelectors": [{"matchLabels": {"app": "nginx"}}]}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "nodeA"},
         "status": {"addresses": [{"type": "InternalIP", "address": "198.51.100.11"}]}},
    ] + [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default",
                                                             "labels": {"app": name}},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
        for name in ("nginx", "apache")
    ]
    cfg, diagnostics = parse_objects(objects)
    assert not [d for d in diagnostics if d.is_error], [str(d) for d in diagnostics]
    status = offline_status(cfg, allocate(cfg), origin="test")
    by_name = {s["name"]: s for s in status["services"]}
    assert by_name["nginx"]["advertisements"]["bgp"] == ["web-only"]
    assert by_name["nginx"]["announced"]["bgp"] == ["nodeA"]
    assert by_name["apache"]["advertisements"]["bgp"] == []
    assert not by_name["apache"]["announced"].get("bgp")
    reason = by_name["apache"]["elections"]["bgp"]["not_served"]
    assert "no BGPAdvertisement for pool pool selects this Service" in reason
