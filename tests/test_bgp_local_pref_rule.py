"""MetalLB's webhook rule for localPref (internal/config `validateBGPAdvPerPool`, the "different local
pref" cases of config_test.go): two BGPAdvertisements without serviceSelectors that give a common
pool's prefixes to a common peer from a common node with different localPref refuse the config; a
different aggregation length, disjoint peers or disjoint nodes make them compatible. With
serviceSelectors it is decided per Service by the speaker (test_bgp_service_selectors.py)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from plugins.bgp import validation
from supervisor import cli
from supervisor.config.model import (
    AddressRange,
    BGPAdvertisement,
    BGPPeer,
    Config,
    IPAddressPool,
    LabelSelector,
    Node,
    labels_of,
)

POOL = IPAddressPool(name="pool1", addresses=(AddressRange(first=ipaddress.ip_address("10.20.30.0"),
                                                           last=ipaddress.ip_address("10.20.30.255"),
                                                           text="10.20.30.40/24"),))
NODES = tuple(Node(name=n, labels=labels_of({"node": n})) for n in ("node1", "node2"))


def on(node: str) -> tuple[LabelSelector, ...]:
    return (LabelSelector(match_labels=(("node", node),)),)


def refusals(*advs: BGPAdvertisement) -> list[str]:
    peers = tuple(BGPPeer(name=n, my_asn=64500, peer_asn=64501, peer_address=ipaddress.ip_address(f"192.0.2.{i}"))
                  for i, n in enumerate(("peer1", "peer2"), start=1))
    cfg = Config(pools=(POOL,), bgp_peers=peers, bgp_advertisements=advs, nodes=NODES)
    return [str(d) for d in validation.validate(cfg) if "localPref" in str(d)]


@pytest.mark.parametrize(("advs", "refused"), [
    # "different local pref - same peers and nodes"
    ((BGPAdvertisement(name="a", local_pref=100), BGPAdvertisement(name="b", local_pref=200)), True),
    # "different local pref - different ipv4 aggregation length"
    ((BGPAdvertisement(name="a", local_pref=100, aggregation_length=32),
      BGPAdvertisement(name="b", local_pref=200, aggregation_length=24)), False),
    # "different local pref - different aggregation lengths" (both families' lengths differ)
    ((BGPAdvertisement(name="a", local_pref=100, aggregation_length=32, aggregation_length_v6=128),
      BGPAdvertisement(name="b", local_pref=200, aggregation_length=24, aggregation_length_v6=64)), False),
    # only the IPv6 length differs and the pool is IPv4: the same prefixes
    ((BGPAdvertisement(name="a", local_pref=100), BGPAdvertisement(name="b", local_pref=200,
                                                                   aggregation_length_v6=64)), True),
    # "different local pref - same peers & different nodes"
    ((BGPAdvertisement(name="a", local_pref=100, node_selectors=on("node1")),
      BGPAdvertisement(name="b", local_pref=200, node_selectors=on("node2"))), False),
    # overlapping nodes: node1 is in both
    ((BGPAdvertisement(name="a", local_pref=100, node_selectors=on("node1")),
      BGPAdvertisement(name="b", local_pref=200)), True),
    # "different local pref - different peers & same nodes"
    ((BGPAdvertisement(name="a", local_pref=100, peers=("peer1",)),
      BGPAdvertisement(name="b", local_pref=200, peers=("peer2",))), False),
    # one has no peers (every peer): a common peer
    ((BGPAdvertisement(name="a", local_pref=100, peers=("peer1",)),
      BGPAdvertisement(name="b", local_pref=200)), True),
    # unset is 0
    ((BGPAdvertisement(name="a"), BGPAdvertisement(name="b", local_pref=0)), False),
    # serviceSelectors: which Services both select is known per Service only, so not refused here
    ((BGPAdvertisement(name="a", local_pref=100),
      BGPAdvertisement(name="b", local_pref=200, service_selectors=(LabelSelector(match_labels=(("app", "x"),)),))),
     False),
    # different pools: no common prefix
    ((BGPAdvertisement(name="a", local_pref=100),
      BGPAdvertisement(name="b", local_pref=200, ip_address_pools=("other",))), False),
], ids=["same-peers-and-nodes", "v4-aggregation-differs", "both-aggregations-differ", "v6-length-irrelevant",
        "different-nodes", "common-node", "different-peers", "all-peers-overlap", "unset-is-zero",
        "service-selectors", "different-pools"])
def test_metallb_s_local_pref_cases(advs: tuple[BGPAdvertisement, ...], refused: bool) -> None:
    found = refusals(*advs)
    assert bool(found) is refused, found
    if refused:
        # The later one is refused, naming the earlier one and the fix.
        [message] = found
        assert "BGPAdvertisement/b: spec.localPref: 200 differs from the 100 of BGPAdvertisement a" in message
        assert "give them the same localPref, or different peers, nodeSelectors or aggregation lengths" in message


def test_check_refuses_the_file_at_the_advertisement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: pool1}\n"
        "spec: {addresses: [10.20.30.0/24]}\n"
        "---\napiVersion: v1\nkind: Node\nmetadata: {name: node1}\n"
        "---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: peer1}\n"
        "spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1}\n"
        "---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {localPref: 100}\n"
        "---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: b}\nspec: {localPref: 200}\n")
    assert cli.main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:20: BGPAdvertisement/b: spec.localPref: 200 differs from the 100 of BGPAdvertisement a" in out
