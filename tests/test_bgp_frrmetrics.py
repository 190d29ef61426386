"""MetalLB's FRR-mode metrics (its frr-metrics sidecar's set) from FRR's JSON, and how the bgp
announcer exports them. The fixtures in tests/fixtures/frr/ are FRR 8.4's real answers, captured
from node n1 of the BGP lab (tests/bgp_lab.py: eBGP to the router 10.0.10.254 with BFD profile
`fast`): `*_up.json` with the session Established, `*_down.json` 4 s after n1's cable was cut."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plugins.bgp.announcer import BGPAnnouncer, Snapshot
from plugins.bgp.frr import FRR, FRRSettings
from plugins.bgp.frrmetrics import (
    BFD_PEER_COUNTERS,
    BGP_MESSAGE_COUNTERS,
    FAMILIES,
    Exporter,
    Family,
    Sample,
    SessionRef,
    parse_bfd,
    parse_bgp,
    samples,
)
from plugins.bgp_stub.announcer import BGPStubAnnouncer
from supervisor.plugin_testing import config_from_yaml, make_view
from tests.fakes import RecordingHost

FIXTURES = Path(__file__).parent / "fixtures" / "frr"
ROUTER = "10.0.10.254"
PEER = (("peer", f"{ROUTER}:179"), ("vrf", "default"))
BFD_PEER = (("peer", ROUTER), ("vrf", "default"))

CONFIG = f"""\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: pool}}
spec: {{addresses: [192.0.2.0/24]}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: adv}}
spec: {{ipAddressPools: [pool]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: router}}
spec: {{myASN: 64500, peerASN: 64501, peerAddress: {ROUTER}, bfdProfile: fast}}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast}}
spec: {{receiveInterval: 100, transmitInterval: 100}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{type: LoadBalancer, loadBalancerIP: 192.0.2.10, ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Node
metadata: {{name: n1}}
status: {{addresses: [{{type: InternalIP, address: 10.0.10.1}}]}}
"""


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def by_series(found: tuple[Sample, ...]) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
    return {(s.family.name, s.labels): s.value for s in found}


def test_the_families_are_metallbs_frr_mode_set_each_named_once() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names)) == 21
    assert sorted(f.name for f, _ in BGP_MESSAGE_COUNTERS) == sorted(
        f"metallb_bgp_{n}" for n in ("opens_sent", "opens_received", "notifications_sent", "updates_total",
                                     "updates_total_received", "keepalives_sent", "keepalives_received",
                                     "route_refresh_sent", "total_sent", "total_received"))
    assert all(f.kind == "counter" for f, _ in (*BGP_MESSAGE_COUNTERS, *BFD_PEER_COUNTERS))


def test_an_established_neighbor_from_frrs_answer() -> None:
    answer = fixture("bgp_neighbors_up.json")
    [neighbor] = parse_bgp(answer)
    raw = answer["default"][ROUTER]
    assert (neighbor.address, neighbor.vrf, neighbor.established, neighbor.prefixes_sent) == (
        ROUTER, "default", True, 1)
    messages = dict(neighbor.messages)
    # FRR's own keys, each carried as FRR counted it.
    for _, key in BGP_MESSAGE_COUNTERS:
        assert messages[key] == raw["messageStats"][key]
    assert messages["opensSent"] >= 1 and messages["keepalivesRecv"] >= 1 and messages["updatesSent"] >= 1


def test_a_cut_cable_is_a_session_down_with_its_counters_kept() -> None:
    [neighbor] = parse_bgp(fixture("bgp_neighbors_down.json"))
    assert (neighbor.established, neighbor.prefixes_sent) == (False, 0)
    [up] = parse_bgp(fixture("bgp_neighbors_up.json"))
    assert dict(neighbor.messages)["opensSent"] >= dict(up.messages)["opensSent"]


def test_bfd_peers_joined_with_their_counters() -> None:
    [peer] = parse_bfd(fixture("bfd_peers_up.json"), fixture("bfd_counters_up.json"))
    assert (peer.peer, peer.vrf, peer.up) == (ROUTER, "default", True)
    [raw] = fixture("bfd_counters_up.json")
    assert dict(peer.counters) == {key: raw[key] for _, key in BFD_PEER_COUNTERS}
    assert dict(peer.counters)["control-packet-input"] > 0 and dict(peer.counters)["session-up"] >= 1
    [down] = parse_bfd(fixture("bfd_peers_down.json"), fixture("bfd_counters_down.json"))
    assert down.up is False and dict(down.counters)["session-down"] >= 1


def test_samples_carry_metallbs_names_and_labels_once_per_series() -> None:
    bgp = parse_bgp(fixture("bgp_neighbors_up.json"))
    bfd = parse_bfd(fixture("bfd_peers_up.json"), fixture("bfd_counters_up.json"))
    session = SessionRef(address=ROUTER, port=179, vrf="", pending=1)
    found = samples([session, session], bgp, bfd)  # a session planned twice is still one series
    series = by_series(found)
    assert len(series) == len(found) == 3 + len(BGP_MESSAGE_COUNTERS) + 1 + len(BFD_PEER_COUNTERS)
    assert series[("metallb_bgp_session_up", PEER)] == 1
    assert series[("metallb_bgp_announced_prefixes_total", PEER)] == 1
    assert series[("metallb_bgp_pending_prefixes_total", (PEER[0],))] == 1
    stats = fixture("bgp_neighbors_up.json")["default"][ROUTER]["messageStats"]
    assert series[("metallb_bgp_opens_sent", PEER)] == stats["opensSent"]
    assert series[("metallb_bgp_updates_total", PEER)] == stats["updatesSent"]
    assert series[("metallb_bgp_total_received", PEER)] == stats["totalRecv"]
    assert series[("metallb_bfd_session_up", BFD_PEER)] == 1
    [raw] = fixture("bfd_counters_up.json")
    assert series[("metallb_bfd_control_packet_output", BFD_PEER)] == raw["control-packet-output"]
    assert series[("metallb_bfd_session_down_events", BFD_PEER)] == raw["session-down"]


def test_a_session_frr_does_not_know_is_down_without_counters() -> None:
    found = by_series(samples([SessionRef(address="10.9.0.1", port=1179, vrf="red", pending=2)], (), ()))
    labels = (("peer", "10.9.0.1:1179"), ("vrf", "red"))
    assert found == {("metallb_bgp_session_up", labels): 0, ("metallb_bgp_announced_prefixes_total", labels): 0,
                     ("metallb_bgp_pending_prefixes_total", (("peer", "10.9.0.1:1179"),)): 2}


def test_the_exporter_adds_increases_survives_a_restart_and_removes_ended_series() -> None:
    host = RecordingHost()
    exporter = Exporter(host)
    counter, gauge = Family("metallb_bgp_opens_sent", "h", "counter"), Family("metallb_bfd_session_up", "h", "gauge")
    exporter.export([Sample(counter, PEER, 0), Sample(gauge, BFD_PEER, 1)])
    key = ("metallb_bgp_opens_sent", tuple(sorted(PEER)))
    assert host.counters[key] == 0  # declared at 0, as the sidecar shows it
    exporter.export([Sample(counter, PEER, 3), Sample(gauge, BFD_PEER, 0)])
    exporter.export([Sample(counter, PEER, 5), Sample(gauge, BFD_PEER, 0)])
    assert host.counters[key] == 5
    exporter.export([Sample(counter, PEER, 1), Sample(gauge, BFD_PEER, 1)])  # bgpd restarted: counts from 0
    assert host.counters[key] == 6
    assert host.gauges[("metallb_bfd_session_up", tuple(sorted(BFD_PEER)))] == 1
    exporter.export([Sample(counter, PEER, 1)])
    assert ("metallb_bfd_session_up", tuple(sorted(BFD_PEER))) not in host.gauges
    exporter.clear()
    assert host.counters == {} and host.gauges == {}


def test_after_a_kill_frrs_counts_are_not_added_to_the_hosts_a_second_time() -> None:
    host = RecordingHost()
    counter = Family("metallb_bgp_opens_sent", "h", "counter")
    key = ("metallb_bgp_opens_sent", tuple(sorted(PEER)))
    Exporter(host).export([Sample(counter, PEER, 4)])  # the killed process; the host keeps its 4
    assert host.counters[key] == 4
    after = Exporter(host)
    after.resume_after_kill()
    after.export([Sample(counter, PEER, 5)])
    assert host.counters[key] == 4  # FRR's 5 is the starting point, not an increase of 5
    after.export([Sample(counter, PEER, 7)])
    after.export([Sample(counter, PEER, 7), Sample(counter, BFD_PEER, 2)])  # a series first seen later
    assert host.counters[key] == 6
    assert host.counters[("metallb_bgp_opens_sent", tuple(sorted(BFD_PEER)))] == 2


def announcer(tmp_path: Path) -> tuple[BGPAnnouncer, RecordingHost]:
    host = RecordingHost(node="n1")
    frr = FRR(FRRSettings(run_dir=tmp_path / "frr", manage_daemons=False))
    bgp = BGPAnnouncer(host, frr=frr, binder=object())  # type: ignore[arg-type]  # not started: no FRR
    bgp.update(make_view(config_from_yaml(CONFIG), "n1"))
    return bgp, host


def test_the_bgp_announcer_exports_what_its_worker_read(tmp_path: Path) -> None:
    bgp, host = announcer(tmp_path)
    bgp.snapshot = Snapshot(bgp_stats=parse_bgp(fixture("bgp_neighbors_up.json")),
                            bfd_stats=parse_bfd(fixture("bfd_peers_up.json"), fixture("bfd_counters_up.json")))
    bgp.tick(0.0)
    stats = fixture("bgp_neighbors_up.json")["default"][ROUTER]["messageStats"]
    assert host.gauges[("metallb_bgp_session_up", PEER)] == 1
    assert host.counters[("metallb_bgp_keepalives_sent", PEER)] == stats["keepalivesSent"]
    assert host.counters[("metallb_bgp_updates_total", PEER)] == stats["updatesSent"]
    assert host.gauges[("metallb_bfd_session_up", BFD_PEER)] == 1
    # The cable cut: the same series, down, counters only ever added to.
    bgp.snapshot = Snapshot(bgp_stats=parse_bgp(fixture("bgp_neighbors_down.json")),
                            bfd_stats=parse_bfd(fixture("bfd_peers_down.json"), fixture("bfd_counters_down.json")))
    bgp.tick(0.1)
    down = fixture("bgp_neighbors_down.json")["default"][ROUTER]["messageStats"]
    assert host.gauges[("metallb_bgp_session_up", PEER)] == 0
    assert host.gauges[("metallb_bfd_session_up", BFD_PEER)] == 0
    assert host.counters[("metallb_bgp_opens_sent", PEER)] == max(down["opensSent"], stats["opensSent"])
    bgp.stop(handover=False)
    assert host.gauges == {} and host.counters == {}


def test_bfd_is_not_asked_without_a_bfd_profile(tmp_path: Path) -> None:
    bgp, _ = announcer(tmp_path)
    asked: list[str] = []

    def show(command: str) -> Any:
        asked.append(command)
        return []

    bgp.frr.show = show  # type: ignore[method-assign]
    assert bgp._poll_bfd() == ()
    assert asked == ["show bfd peers json", "show bfd peers counters json"]
    bgp.update(make_view(config_from_yaml(CONFIG.replace(", bfdProfile: fast", "")), "n1"))
    asked.clear()
    assert bgp._poll_bfd() == ()
    assert asked == []


def test_the_stub_exports_the_same_labels(tmp_path: Path) -> None:
    host = RecordingHost(node="n1")
    stub = BGPStubAnnouncer(host)
    stub.update(make_view(config_from_yaml(CONFIG), "n1"))
    assert host.gauges[("metallb_bgp_session_up", PEER)] == 0
    assert not [k for k in host.counters if k[0].startswith("metallb_bfd_")]
    stub.stop(handover=False)
    assert host.gauges == {}


def test_the_hosts_declarations_agree_with_the_plugins_families() -> None:
    from supervisor.serving.metrics import METALLB_FAMILIES

    # The host declares every family up front (HELP and TYPE, promtool's list of kept names):
    # the same kind, help and labels as the plugin sends, or its updates would be rejected.
    declared = {spec.name: spec for spec in METALLB_FAMILIES}
    for family in FAMILIES:
        spec = declared[family.name]
        assert (spec.kind.value, spec.documentation) == (family.kind, family.help)
        expected = ("peer",) if family.name == "metallb_bgp_pending_prefixes_total" else ("peer", "vrf")
        assert spec.label_names == expected
    assert {n for n in declared if n.startswith(("metallb_bgp_", "metallb_bfd_"))} == {f.name for f in FAMILIES}


def test_bfd_peers_of_two_vrfs_keep_their_own_counters() -> None:
    peers, counters = fixture("bfd_peers_up.json"), fixture("bfd_counters_up.json")
    red_peer = {**peers[0], "vrf": "red", "status": "down"}
    red_counters = {**counters[0], "vrf": "red", "control-packet-input": 7}
    found = parse_bfd([red_peer, *peers], [*counters, red_counters])
    assert [(p.vrf, p.up, dict(p.counters)["control-packet-input"]) for p in found] == [
        ("default", True, counters[0]["control-packet-input"]), ("red", False, 7)]
    # A peer bfdd has no counters for yet: its session_up only.
    [alone] = parse_bfd(peers, [])
    assert alone.counters == ()
    assert [s.family.name for s in samples([], (), (alone,))] == ["metallb_bfd_session_up"]
