"""BGP through FRR end to end: three metalloid + FRR nodes, an FRR router with ECMP, a client behind it.

One lab for the module (tests/bgp_lab.py: namespaces `mbg<pid>-*`, torn down
by PID and name, also on failure). The `healthy` fixture puts it back together
between tests (nodes running, cables in, three ECMP paths on the router).
Everything is observed from outside: the router's kernel routes and FRR's
view of the paths, the far client's connections, /status and /metrics over the
lab network. The BGP hold time is 9 s, so a path that disappears within 3 s
of a cut cable can only have been withdrawn by BFD (100 ms x 3); the bench
(bench/bgp.py) measures how fast.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator

import pytest

from plugins.bgp.frrdelta import Entry, entries
from supervisor.lab.probe import outages, parse_line
from tests.bgp_lab import NODES, VIP, BGPLab, service_ips

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PEER_LABEL = 'peer="10.0.10.254:179",vrf="default"'  # MetalLB's FRR-mode labels
BFD_PEER_LABEL = 'peer="10.0.10.254",vrf="default"'


@pytest.fixture(scope="module")
def bgp() -> Iterator[BGPLab]:
    lab = BGPLab(bfd=True)
    try:
        lab.create()
        lab.wait("three ECMP paths on the router", lambda: lab.paths() == set(NODES), 60)
        yield lab
    finally:
        lab.destroy()


@pytest.fixture
def healthy(bgp: BGPLab) -> BGPLab:
    for node in NODES:
        bgp.lab.link(node, True)
        proc = bgp.procs.get(node)
        if proc is None or proc.poll() is not None:
            bgp.start(node)
    bgp.write_config()
    bgp.wait("three ECMP paths on the router", lambda: bgp.paths() == set(NODES), 60)
    return bgp


def plugin_status(lab: BGPLab, node: str) -> dict:  # type: ignore[type-arg]
    status = lab.statuses((node,))[node] or {}
    return dict((status.get("plugins") or {}).get("bgp") or {})


def metric(lab: BGPLab, node: str, name: str, labels: str) -> float | None:
    text = lab.fetch("/metrics", (node,))[node] or ""
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_sessions_routes_and_metrics_are_reported(healthy: BGPLab) -> None:
    lab = healthy
    for node in NODES:
        lab.wait(f"{node} reporting its route sent", lambda n=node: (plugin_status(lab, n).get("sessions") or [{}])[0]
                 .get("prefixes_sent") == 1, 15)
        status = plugin_status(lab, node)
        assert status["sockets_ready"] is True
        assert status["frr"]["in_sync"] is True and status["frr"]["error"] is None
        [session] = status["sessions"]
        assert (session["state"], session["peer_asn"], session["bfd_profile"]) == ("Established", 64501, "fast")
        assert [r["prefix"] for r in status["routes"]] == [f"{VIP}/32"]
        assert metric(lab, node, "metallb_bgp_session_up", PEER_LABEL) == 1
        assert metric(lab, node, "metallb_bgp_announced_prefixes_total", PEER_LABEL) == 1
        assert (metric(lab, node, "metallb_bgp_updates_total", PEER_LABEL) or 0) >= 1
        # The FRR-mode sidecar's set, from the speaker: FRR's counters and bfdd's session.
        assert (metric(lab, node, "metallb_bgp_opens_sent", PEER_LABEL) or 0) >= 1
        assert (metric(lab, node, "metallb_bgp_keepalives_received", PEER_LABEL) or 0) >= 1
        lab.wait(f"{node}'s BFD session up in /metrics",
                 lambda n=node: metric(lab, n, "metallb_bfd_session_up", BFD_PEER_LABEL) == 1, 5)
        assert (metric(lab, node, "metallb_bfd_control_packet_input", BFD_PEER_LABEL) or 0) >= 1
    # The router got the advertisement's communities (the outbound route-map) from every node.
    answer = lab.router_show(f"show bgp ipv4 unicast {VIP}/32 json")
    paths = answer["paths"]
    assert len(paths) == len(NODES)
    for path in paths:
        assert path["community"]["string"] == "no-advertise"
        assert path["largeCommunity"]["string"] == "64500:1:2"
    # BFD sessions with the profile's timers.
    peers = lab.router_show("show bfd peers json")
    assert sorted(p["peer"] for p in peers if p["status"] == "up") == sorted(lab.lab.host(n).ip for n in NODES)
    assert {p["transmit-interval"] for p in peers} == {100}


def test_the_client_reaches_the_service_ip_over_every_node(healthy: BGPLab) -> None:
    served = healthy.served_by(60)
    assert None not in served, served
    assert set(served) == set(NODES), served


def test_a_dead_node_is_withdrawn_by_bfd_not_by_the_hold_time(healthy: BGPLab) -> None:
    lab = healthy
    lab.lab.link("n3", False)
    cut = time.monotonic()
    # holdTime is 9 s: a withdrawal within 3 s can only come from BFD.
    withdrawn = lab.wait("n3's path withdrawn", lambda: lab.paths() == {"n1", "n2"}, 3)
    assert withdrawn - cut < 3
    served = lab.served_by(30)
    assert None not in served and set(served) == {"n1", "n2"}, served
    lab.lab.link("n3", True)
    lab.wait("n3's path back", lambda: lab.paths() == set(NODES), 30)


def test_sigterm_withdraws_before_the_node_stops_serving(healthy: BGPLab) -> None:
    lab = healthy
    frr_pids = set(plugin_status(lab, "n2")["frr"]["pids"].values())
    assert len(frr_pids) == 3
    probe = lab.probe(seconds=6)
    assert probe.stdout is not None
    lines = [probe.stdout.readline() for _ in range(20)]  # 200 ms of answers first
    os.killpg(lab.procs["n2"].pid, signal.SIGTERM)
    assert lab.procs["n2"].wait(timeout=30) == 0
    assert "n2" not in lab.paths()
    rest, _ = probe.communicate(timeout=30)
    samples = [s for s in (parse_line(x) for x in [*lines, *rest.splitlines()]) if s is not None]
    # ECMP switches servers all the time (zero-length "outages"); a failed connect is a real gap.
    gaps = [o for o in outages(samples) if o.end > o.start]
    assert samples and not gaps, gaps
    assert {s.served_by for s in samples[-50:]} <= {"n1", "n3"}
    # Its FRR daemons were stopped by PID.
    assert not [pid for pid in frr_pids if _alive(pid)]
    log = (lab.workdir / "n2.log").read_text()
    assert log.index("bgp.withdrawn_all") < log.index("bgp.stopped")


def test_a_crashed_frr_is_restarted_and_the_routes_return(healthy: BGPLab) -> None:
    lab = healthy
    before = plugin_status(lab, "n1")["frr"]
    old = before["pids"]["bgpd"]
    os.kill(old, signal.SIGKILL)
    lab.wait("n1's FRR restarted", lambda: plugin_status(lab, "n1").get("frr", {}).get("restarts", 0)
             > before["restarts"], 20)
    lab.wait("n1's path back", lambda: lab.paths() == set(NODES), 30)
    after = plugin_status(lab, "n1")["frr"]
    assert after["pids"]["bgpd"] != old
    assert after["in_sync"] is True
    assert "bgp.frr_daemon_died daemons=bgpd" in (lab.workdir / "n1.log").read_text()


def test_a_new_service_is_added_by_one_reload_and_an_unchanged_config_reloads_nothing(healthy: BGPLab) -> None:
    lab = healthy
    second = service_ips(2)[1]
    reloads = {n: plugin_status(lab, n)["frr"]["reloads"] for n in NODES}
    lab.write_config(services=2)
    lab.wait("the new Service's paths", lambda: lab.paths(second) == set(NODES), 20)
    assert lab.paths() == set(NODES)
    # /status carries what the announcer reported at its last tick: the router can see a
    # node's new path before that node's next report, so wait for the report.
    lab.wait("every node reporting one more FRR reload",
             lambda: all(plugin_status(lab, n)["frr"]["reloads"] > reloads[n] for n in NODES), 10)
    after = {n: plugin_status(lab, n)["frr"]["reloads"] for n in NODES}
    # The same config written again: a new generation, the same FRR text, no reload (unless
    # the node's routes changed meanwhile, e.g. a membership flap on a loaded machine: then
    # the log says so).
    changes = {n: _route_changes(lab, n) for n in NODES}
    lab.write_config(services=2)
    time.sleep(2)
    for node in NODES:
        if _route_changes(lab, node) == changes[node]:
            assert plugin_status(lab, node)["frr"]["reloads"] == after[node], node
    lab.write_config(services=1)
    lab.wait("the second Service withdrawn", lambda: lab.paths(second) == set(), 20)


def test_service_selectors_keep_an_unselected_service_off_the_router(healthy: BGPLab) -> None:
    """BGPAdvertisement serviceSelectors (MetalLB's bgpAdsForService): selecting svc-1 only
    withdraws svc-0 from every node and advertises svc-1; the node says why in /status."""
    lab = healthy
    second = service_ips(2)[1]
    lab.write_config(services=2, selected="svc-1")
    lab.wait("svc-1 routed over every node, svc-0 withdrawn",
             lambda: lab.paths(second) == set(NODES) and lab.paths() == set(), 20)
    lab.wait("n1 reporting why svc-0 is not advertised", lambda: any(
        "selects this Service" in str(entry) for entry in plugin_status(lab, "n1").get("not_advertised", [])), 10)
    lab.write_config(services=1)
    lab.wait("svc-0 back over every node, svc-1 withdrawn",
             lambda: lab.paths() == set(NODES) and lab.paths(second) == set(), 20)


def test_services_added_and_removed_as_deltas_leave_frr_running_what_was_rendered(healthy: BGPLab) -> None:
    lab = healthy
    for count in (6, 3):
        ips = service_ips(count)
        gone = service_ips(6)[count:]
        reloads = {n: plugin_status(lab, n)["frr"]["reloads"] for n in NODES}
        lab.write_config(services=count)
        lab.wait(f"{count} Services with every node's path, the others withdrawn",
                 lambda ips=ips, gone=gone: all(lab.paths(ip) == set(NODES) for ip in ips)
                 and not any(lab.paths(ip) for ip in gone), 30)
        # /status is a tick behind the router: wait for every node's report of this reload.
        lab.wait("every node reporting the reload, in sync", lambda reloads=reloads: all(
            plugin_status(lab, n)["frr"]["reloads"] > reloads[n] and plugin_status(lab, n)["frr"]["in_sync"]
            for n in NODES), 10)
        for node in NODES:
            frr = plugin_status(lab, node)["frr"]
            # Changes after the first apply go as deltas through vtysh, and none failed.
            assert (frr["last_apply"], frr["delta_failures"], frr["error"]) == ("delta", 0, None), frr
            rendered = (lab.node_frr[node].run_dir / "frr.conf").read_text()
            running = lab.node_frr[node].running_config()
            assert len([e for e in _sections(rendered) if e[1].strip().startswith("network ")]) == count
            assert _sections(running) == _sections(rendered), (node, running)


def _sections(text: str) -> set[Entry]:
    """The parts of a configuration a Service change touches, in FRR's own words: the networks
    and neighbors of each address family, the route-maps and what they match and set (FRR
    writes well-known communities by name: 65535:65282 is no-advertise)."""
    wanted = ("network ", "neighbor ", "route-map ", "match ", "set ")

    def touched(context: tuple[str, ...], line: str) -> bool:
        in_family = bool(context) and "address-family" in context[-1]
        in_route_map = bool(context) and context[0].startswith("route-map ")
        return line.strip().startswith(wanted) and (in_family or in_route_map or line.startswith("route-map "))

    return {(context, line.replace("65535:65282", "no-advertise")) for context, line in entries(text)
            if touched(context, line)}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _route_changes(lab: BGPLab, node: str) -> int:
    log = (lab.workdir / f"{node}.log").read_text(errors="replace")
    return log.count("bgp.route_added") + log.count("bgp.route_withdrawn")
