"""BGP through FRR: failover time with and without BFD, and routes applied per second at 1,000 Services.

Builds the BGP lab of the tests (tests/bgp_lab.py: an FRR router with ECMP,
three metalloid + FRR nodes, a client behind the router; private namespaces,
removed at the end) and prints:

- failover: a node's cable is cut (the node dies for the router); `withdrawn`
  is the time from the cut to the router's kernel dropping that node's path,
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
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor.lab.probe import parse_line
from tests.bgp_lab import NODES, BGPLab


def failover(lab: BGPLab, node: str) -> tuple[float, float]:
    probe = lab.probe(seconds=12)
    assert probe.stdout is not None
    for _ in range(30):
        probe.stdout.readline()
    cut = time.monotonic()
    lab.lab.link(node, False)
    withdrawn = lab.wait(f"{node} withdrawn", lambda: node not in lab.paths(), 30) - cut
    time.sleep(0.5)
    probe.kill()
    rest, _ = probe.communicate()
    samples = [s for s in (parse_line(x) for x in rest.splitlines()) if s is not None]
    failed = [s.at for s in samples if s.served_by is None and s.at >= cut]
    outage = (max(failed) - cut) if failed else 0.0
    lab.lab.link(node, True)
    lab.wait("all paths back", lambda: lab.paths() == set(NODES), 60)
    time.sleep(1)
    return withdrawn, outage


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
        for trial in range(trials):
            w, o = failover(lab, NODES[trial % len(NODES)])
            withdrawn.append(w)
            outage.append(o)
        label = "BFD 100 ms x 3, hold 9 s" if bfd else "no BFD, hold 3 s / keepalive 1 s"
        print(f"failover, {label}, {trials} trials (node cable cut):")
        print("  " + stats("withdrawn", withdrawn))
        print("  " + stats("outage", outage))
    finally:
        lab.destroy()


def run_scale(services: int, incremental: bool) -> None:
    how = "delta (vtysh -f)" if incremental else "full (frr-reload.py)"
    lab = BGPLab(bfd=True, prefix="mbgs", incremental=incremental)
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
            lab.wait("one route left", lambda: lab.route_count() == 1, 900)
            took = time.monotonic() - started
            print(f"scale, {how}: {services} -> 1 Services: withdrawn from the router's kernel after {took:.1f} s "
                  f"= {(services - 1) / took:.0f} routes/s", flush=True)
    finally:
        lab.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--skip", choices=("bfd", "nobfd", "scale", "scale-full"), action="append", default=[],
                        help="scale-full: skip the baseline, every change through frr-reload.py")
    args = parser.parse_args()
    if "bfd" not in args.skip:
        run_failover(True, args.trials)
    if "nobfd" not in args.skip:
        run_failover(False, args.trials)
    if "scale" not in args.skip:
        run_scale(args.services, incremental=True)
        if "scale-full" not in args.skip:
            run_scale(args.services, incremental=False)


if __name__ == "__main__":
    main()
