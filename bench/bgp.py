"""BGP through FRR: failover time with and without BFD, and routes applied per second at 1,000 Services.

Builds the BGP lab of the tests (tests/bgp_lab.py: an FRR router with ECMP,
three metalloid + FRR nodes, a client behind the router; private namespaces,
removed at the end) and prints:

- failover: a node's cable is cut (the node dies for the router); `withdrawn`
  is the time from the cut to the router's kernel dropping that node's path,
  polled (from just before the `ip link set ... down` process starts to the
  10 ms poll of `ip route` that sees it), and `kernel` the same interval from
  the kernel's own events (`ip -ts monitor` of the bridge port going down and
  of the route losing the node's nexthop),
  `outage` the time from the cut to the client's last failed connect (the
  client connects every 10 ms; with ECMP only the flows hashed to the dead
  node fail). With the BFDProfile `fast` (100 ms x 3) on both sides, and
  without BFD (BGP hold time 3 s, keepalive 1 s: what detection falls back to).
- scale: the config goes from 2 to N Services at once; the time until the
  router's kernel has all N routes from every node, and routes/s; first as
  the plugin applies it (the difference through one vtysh -f), then, as the
  baseline in the same run, with every change through frr-reload.py
  (`incremental_apply: false`). For the delta also the way back, N to 1.

    sudo .venv/bin/python bench/bgp.py --trials 5 --services 1000
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor.lab.probe import parse_line
from tests.bgp_lab import NODES, VIP, BGPLab


def _monitor(netns: str, what: str) -> subprocess.Popen[str]:
    """`ip -ts monitor WHAT` in `netns`: the kernel's events, each stamped when ip read it."""
    return subprocess.Popen(["ip", "netns", "exec", netns, "ip", "-ts", "monitor", what],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _events(monitor: subprocess.Popen[str]) -> list[tuple[float, str]]:
    """(wall-clock time, the whole message) of each event a monitor printed (continuation
    lines, e.g. an ECMP route's nexthops, belong to the message before them)."""
    monitor.terminate()
    out, _ = monitor.communicate(timeout=5)
    events: list[tuple[float, str]] = []
    for line in out.splitlines():
        match = re.match(r"\[(\S+)\]\s*(.*)", line)
        if match:
            stamp = datetime.datetime.fromisoformat(match.group(1)).timestamp()
            events.append((stamp, match.group(2)))
        elif events:
            events[-1] = (events[-1][0], events[-1][1] + "\n" + line)
    return events


def _link_down(event: str, port: str) -> bool:
    """An `ip monitor link` message saying `port` (e.g. "5: p3@if4: <BROADCAST,MULTICAST> ...") is down."""
    match = re.match(r"(?:Deleted )?\d+: ([^:@\s]+)(?:@\S+)?: <([^>]*)>", event)
    return bool(match) and match.group(1) == port and "UP" not in match.group(2).split(",")


def _logged(path: Path, since: float, *needles: str) -> float | None:
    """When FRR first logged a line containing every one of `needles` at or after `since` (the lab router logs
    with millisecond timestamps: `log timestamp precision 3`)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        match = re.match(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) ", line)
        if match and all(n in line for n in needles):
            at = datetime.datetime.strptime(match.group(1), "%Y/%m/%d %H:%M:%S.%f").timestamp()
            if at >= since - 0.001:
                return at
    return None


Breakdown = dict[str, float]


def _bfd_status(lab: BGPLab, peer: str) -> str:
    try:
        found = [p for p in lab.router_show("show bfd peers json") if p.get("peer") == peer]
    except Exception as exc:  # the bench reports it and goes on
        return f"unknown ({exc})"
    return ",".join(str(p.get("status")) for p in found) or "no session"


def failover(lab: BGPLab, node: str) -> tuple[float, float, Breakdown]:
    """(withdrawn as polled, client outage, the kernel-timed withdrawal and its steps in seconds
    after the cut: `bfd_down` (the router's bfdd), `bgp_down` (its bgpd), `kernel`)."""
    probe = lab.probe(seconds=12)
    assert probe.stdout is not None
    for _ in range(30):
        probe.stdout.readline()
    # The kernel's events give the cut and the withdrawal to the microsecond; the polled figure
    # also counts the `ip link set` process start before the cut and the polling interval after.
    port = f"p{lab.lab.host(node).index}"
    node_ip = lab.lab.host(node).ip
    # Whether the router's BFD session to the node is up at the cut: BFD can only take down a
    # session that is up (bgpd acts on an up -> down change), otherwise the hold time does.
    bfd_before = _bfd_status(lab, node_ip)
    links, routes = _monitor(lab.lab.bridge_ns, "link"), _monitor(lab.lab.host("router").netns, "route")
    time.sleep(0.2)
    cut = time.monotonic()
    lab.lab.link(node, False)
    withdrawn = lab.wait(f"{node} withdrawn", lambda: node not in lab.paths(), 30) - cut
    time.sleep(0.5)
    probe.kill()
    rest, _ = probe.communicate()
    samples = [s for s in (parse_line(x) for x in rest.splitlines()) if s is not None]
    failed = [s.at for s in samples if s.served_by is None and s.at >= cut]
    outage = (max(failed) - cut) if failed else 0.0
    cut_at = next((t for t, text in _events(links) if _link_down(text, port)), None)
    gone_at = next((t for t, text in _events(routes) if cut_at is not None and t >= cut_at and VIP in text
                    and f"via {node_ip} " not in text and "nexthop" in text), None)
    steps: Breakdown = {}
    if cut_at is not None:
        logs = lab.router.run_dir
        for name, at in (("bfd_down", _logged(logs / "bfdd.log", cut_at, f"peer:{node_ip} ", "-> down")),
                         ("bgp_down", _logged(logs / "bgpd.log", cut_at, f"neighbor {node_ip}", "Down")),
                         ("kernel", gone_at)):
            if at is not None:
                steps[name] = at - cut_at
    print(f"  trial {node}: withdrawn {withdrawn * 1000:.0f} ms, router's BFD session before the cut: {bfd_before}, "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in steps.items()), flush=True)
    if withdrawn > 1.0:
        # Not BFD's detection: what the router's daemons said about the node.
        for daemon in ("bfdd", "bgpd"):
            lines = (lab.router.run_dir / f"{daemon}.log").read_text(errors="replace").splitlines()
            print(f"    {daemon}.log, last lines naming {node_ip}:", *[x for x in lines if node_ip in x][-6:],
                  sep="\n      ", flush=True)
    lab.lab.link(node, True)
    lab.wait("all paths back", lambda: lab.paths() == set(NODES), 60)
    time.sleep(1)
    return withdrawn, outage, steps


def stats(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"{name:<10} p50 {statistics.median(ms):7.0f} ms   p99 {p99:7.0f} ms   max {ms[-1]:7.0f} ms"


def run_failover(bfd: bool, trials: int) -> None:
    lab = BGPLab(bfd=bfd, hold=9 if bfd else 3, keepalive=3 if bfd else 1, prefix="mbgb")
    try:
        lab.create()
        lab.wait("three paths", lambda: lab.paths() == set(NODES), 60)
        withdrawn, outage = [], []
        steps: dict[str, list[float]] = {"bfd_down": [], "bgp_down": [], "kernel": []}
        for trial in range(trials):
            w, o, found = failover(lab, NODES[trial % len(NODES)])
            withdrawn.append(w)
            outage.append(o)
            for name, value in found.items():
                steps[name].append(value)
        label = "BFD 100 ms x 3, hold 9 s" if bfd else "no BFD, hold 3 s / keepalive 1 s"
        print(f"failover, {label}, {trials} trials (node cable cut):")
        print("  " + stats("withdrawn", withdrawn) + "   (polled: from before `ip link set` to the poll that saw it)")
        notes = {"bfd_down": "the router's bfdd logs the session down", "bgp_down": "its bgpd logs the neighbor down",
                 "kernel": "its kernel's route loses the node (ip monitor)"}
        for name, values in steps.items():
            if values:
                print("  " + stats(name, values) + f"   (cut -> {notes[name]}; {len(values)}/{trials} trials)")
        print("  " + stats("outage", outage), flush=True)
    finally:
        lab.destroy()


def _trace_withdrawal(lab: BGPLab, services: int, started: float, timeout: float) -> float | None:
    """1,000 -> 1: when the router's kernel is down to one route (None: not within `timeout`), printing
    each second where the routes still are: every node's own BGP table and what it still advertises
    to the router (FRR's adj-RIB-out), the router's received count per node, its kernel's routes."""
    router_ip = lab.lab.host("router").ip
    last = ""
    while time.monotonic() - started < timeout:
        if lab.route_count() == 1:
            return time.monotonic() - started
        cells = []
        for node in NODES:
            frr = lab.node_frr[node]
            try:
                table = len(frr.show("show bgp ipv4 unicast json").get("routes", {}))
                out = frr.show(f"show bgp ipv4 unicast neighbors {router_ip} advertised-routes json")
                cells.append(f"{node} table {table} adj-out {out.get('totalPrefixCounter', '?')}")
            except Exception as exc:  # a busy vtysh: say so and go on
                cells.append(f"{node} ? ({type(exc).__name__})")
        try:
            peers = lab.router_show("show bgp ipv4 unicast summary json")["peers"]
            rcvd = " ".join(f"{ip}={p.get('pfxRcd')}" for ip, p in sorted(peers.items()))
        except Exception as exc:
            rcvd = f"? ({type(exc).__name__})"
        line = f"{'; '.join(cells)}; router received {rcvd}; router kernel {lab.route_count()}"
        if line != last:
            print(f"    t={time.monotonic() - started:6.1f}s {line}", flush=True)
            last = line
        time.sleep(1)
    return None


def run_scale(services: int, incremental: bool, bind_local: bool = True, withdraw_timeout: float = 900) -> None:
    how = "delta (vtysh -f)" if incremental else "full (frr-reload.py)"
    how += "" if bind_local else ", bindLocal off"
    lab = BGPLab(bfd=True, prefix="mbgs", incremental=incremental, bind_local=bind_local)
    try:
        lab.create()
        lab.wait("three paths", lambda: lab.paths() == set(NODES), 60)
        # One change first, so that the next one is applied the way this run measures.
        lab.write_config(services=2)
        lab.wait("two routes", lambda: lab.route_count() == 2, 60)
        started = time.monotonic()
        lab.write_config(services=services)

        def complete() -> bool:
            out = lab.lab.run("router", "ip", "-4", "route", "show", "proto", "bgp", check=False).stdout
            routes = [b for b in out.split("\n") if b and not b.startswith("\t")]
            return len(routes) >= services and out.count("nexthop via") >= services * len(NODES)

        lab.wait(f"{services} routes with {len(NODES)} paths each", complete, 900)
        took = time.monotonic() - started
        print(f"scale, {how}: 2 -> {services} Services on {len(NODES)} nodes: all routes in the router's kernel "
              f"after {took:.1f} s = {(services - 2) / took:.0f} routes/s ({(services - 2) * len(NODES) / took:.0f} "
              "paths/s)", flush=True)
        if incremental:
            started = time.monotonic()
            lab.write_config(services=1)
            took = _trace_withdrawal(lab, services, started, withdraw_timeout)
            if took is None:
                print(f"scale, {how}: {services} -> 1 Services: {lab.route_count()} routes still in the router's "
                      f"kernel after {withdraw_timeout:.0f} s", flush=True)
            else:
                print(f"scale, {how}: {services} -> 1 Services: withdrawn from the router's kernel after "
                      f"{took:.1f} s = {(services - 1) / took:.0f} routes/s", flush=True)
    finally:
        lab.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--skip", choices=("bfd", "nobfd", "scale", "scale-full"), action="append", default=[],
                        help="scale-full: skip the baseline, every change through frr-reload.py")
    parser.add_argument("--no-bind-local", action="store_true",
                        help="scale: the nodes do not bind the Service IPs on lo (Settings.bindLocal false)")
    parser.add_argument("--withdraw-timeout", type=float, default=900, help="scale: give up on N -> 1 after this")
    args = parser.parse_args()
    if "bfd" not in args.skip:
        run_failover(True, args.trials)
    if "nobfd" not in args.skip:
        run_failover(False, args.trials)
    if "scale" not in args.skip:
        run_scale(args.services, incremental=True, bind_local=not args.no_bind_local,
                  withdraw_timeout=args.withdraw_timeout)
        if "scale-full" not in args.skip:
            run_scale(args.services, incremental=False)


if __name__ == "__main__":
    main()
