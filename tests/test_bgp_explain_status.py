"""`metalloid explain` and `metalloid status` on a BGP node: the sessions, their state, and whether each route is
advertised, from the /status document the supervisor builds out of the real bgp announcer's status()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins.bgp.announcer import BGPAnnouncer, Snapshot
from plugins.bgp.frr import FRR, FRRSettings, Neighbor, parse_neighbors
from supervisor.allocating.allocator import allocate
from supervisor.commands.status import render_tables
from supervisor.messages import AllocationDone
from supervisor.plugin_testing import FakeHost, config_from_yaml, make_view
from supervisor.serving.explaining import explain, find_service, render_text
from supervisor.supervising.state import RoutedState
from supervisor.supervising.status import build_status
from tests.test_k8s_bgp_status import CONFIG

LAYER2_ONLY = """\
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2-pool}
spec: {addresses: [10.0.10.0/24]}
---
apiVersion: v1
kind: Service
metadata: {name: printer, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: 10.0.10.5, ports: [{port: 631}]}
"""


def frr_says(address: str, state: str, sent: int) -> Neighbor:
    """A neighbor as the announcer reads it: from `show bgp vrf all neighbors json`'s shape."""
    [neighbor] = parse_neighbors({"default": {address: {
        "bgpState": state, "addressFamilyInfo": {"ipv4Unicast": {"sentPrefixCounter": sent}},
        "messageStats": {"updatesSent": 3 * sent}}}})  # fmt: skip
    return neighbor


def node_status(tmp_path: Path, neighbors: tuple[Neighbor, ...], extra: str = "") -> dict[str, Any]:
    """The /status document of node n1 running the bgp announcer, FRR reporting `neighbors`."""
    config = config_from_yaml(CONFIG + extra)
    frr = FRR(FRRSettings(run_dir=tmp_path / "frr", manage_daemons=False, secrets_dir=tmp_path / "secrets"))
    announcer = BGPAnnouncer(FakeHost("n1"), frr=frr)  # not started: FRR's answers are set below
    announcer.update(make_view(config, "n1"))
    announcer.snapshot = Snapshot(neighbors=neighbors, reloads=2, ready=True)
    state = RoutedState(node_name="n1", allocation=AllocationDone(generation=1, result=allocate(config)),
                        allocated_config=config, statuses={"announcer-bgp": dict(announcer.status())})
    return build_status(state, [], now=0.0, version="test", protocols={"announcer-bgp": "bgp"})


def explained(status: dict[str, Any], name: str) -> dict[str, Any]:
    service, _ = find_service(status, name)
    assert service is not None
    return explain(status, service, source="test")


def test_explain_lists_each_peer_its_session_state_and_whether_the_route_is_advertised(tmp_path: Path) -> None:
    status = node_status(tmp_path, (frr_says("10.0.0.1", "Established", 1),
                                    frr_says("10.0.0.2", "Active", 0)))  # fmt: skip
    result = explained(status, "default/web")
    [bgp] = result["announcement"]
    assert (bgp["protocol"], bgp["state"], bgp["nodes"]) == ("bgp", "announced", ["n1"])
    assert [(p["peer"], p["state"], p["prefix"], p["advertised"]) for p in bgp["peers"]][1:] == [
        ("tor-a", "Established", "192.0.2.10/32", True),
        ("tor-b", "Active", "192.0.2.10/32", False),
    ]
    # The peer whose passwordSecret cannot be read is not in FRR's configuration at all.
    locked = bgp["peers"][0]
    assert (locked["peer"], locked["advertised"]) == ("locked", False)
    assert locked["state"].startswith("not configured: spec.passwordSecret metallb-system/missing")
    text = render_text(result)
    assert "Announced (bgp): by n1." in text
    assert "    tor-a (10.0.0.1): session Established; 192.0.2.10/32 advertised" in text
    assert "    tor-b (10.0.0.2): session Active; 192.0.2.10/32 NOT advertised (the session is not established)" in text
    assert "Fix:" not in text  # one session is up: the route reaches a router


def test_explain_says_no_router_has_the_route_when_no_session_is_up(tmp_path: Path) -> None:
    status = node_status(tmp_path, (frr_says("10.0.0.1", "Connect", 0),))  # fmt: skip
    text = render_text(explained(status, "default/web"))
    assert "no router has the route from this node yet" in text
    assert "Fix: check each BGPPeer's peerAddress, peerASN, myASN" in text


def test_explain_gives_the_bgp_announcers_reason_when_it_advertises_nothing(tmp_path: Path) -> None:
    status = node_status(tmp_path, (), extra=LAYER2_ONLY)
    result = explained(status, "default/printer")
    [bgp] = result["announcement"]
    assert (bgp["state"], bgp["why"]) == ("not-advertised",
                                          "n1 does not advertise it: no BGPAdvertisement covers pool l2-pool")
    assert result["not_announced"] is None  # the entry says why; not the generic L2Advertisement guess
    assert "Announced (bgp): not from this node." in render_text(result)
    # An announced Service shows no such entry.
    assert [e["state"] for e in explained(status, "default/web")["announcement"]] == ["announced"]


def test_status_prints_the_bgp_sessions_and_frrs_state(tmp_path: Path) -> None:
    status = node_status(tmp_path, (frr_says("10.0.0.1", "Established", 1),))  # fmt: skip
    text = render_tables(status)
    section = text[text.index("BGP SESSIONS"):]
    header, *rows = section.splitlines()[:5]
    assert header.startswith("BGP SESSIONS   FRR: not managed (vtysh socket dir ")
    assert "in sync" not in header.replace("NOT in sync", "")  # nothing applied in this test
    assert "2 reloads" in header
    cells = [row.split() for row in rows if row.strip()]
    assert cells[0] == ["PEER", "ADDRESS", "VRF", "MY-ASN", "PEER-ASN", "STATE", "BFD", "PREFIXES-SENT", "ROUTES"]
    by_peer = {c[0]: c for c in cells[1:]}
    assert by_peer["tor-a"] == ["tor-a", "10.0.0.1", "default", "64500", "64501", "Established", "<none>", "1", "1"]
    assert by_peer["tor-b"][5:6] == ["unknown"]  # FRR does not list it (yet)
    assert by_peer["locked"][5:7] == ["not", "configured:"]
