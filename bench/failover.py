"""Failover outage seen by a client, metalloid next to keepalived, in one run.

In a private lab (a bridge, n1-n3, a client; network namespaces made here and
removed at the end), the client connects to 10.0.10.10:8080 every 10 ms while
the bench fails the owner, and prints p50/p99/max of:

- outage: the longest run of failed connects around the failure;
- switch: from the failure to the first answer from another node.

Scenarios: `death` (the owner's link cut and its daemon SIGKILLed at the same
instant, like a power loss), `crash` (SIGKILL of the daemon on a live node),
`sigterm` (a clean stop), `linkdown` (the cable alone). keepalived (Debian's
package, VRRPv3) runs in the same namespaces as the baseline, with
`advert_int 1` and with the interval metalloid's heartbeat uses, and the ratios
are printed.

    sudo .venv/bin/python bench/failover.py --trials 20
    sudo .venv/bin/python bench/failover.py --trials 5 --only keepalived
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supervisor.lab.netns import Lab  # noqa: E402
from supervisor.lab.probe import outages, parse_line  # noqa: E402

NODES = ("n1", "n2", "n3")
VIP = "10.0.10.10"
PORT = 8080
SCENARIOS = ("death", "crash", "sigterm", "linkdown")


@dataclass(frozen=True)
class Trial:
    outage: float | None
    switch: float | None
    before: str | None
    after: str | None


class Cluster:
    """Three daemons in the lab; subclasses say how to start one and who owns the VIP."""

    name = "?"

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, node: str) -> None:
        raise NotImplementedError

    def start_all(self) -> None:
        for node in NODES:
            self.start(node)

    def stop(self, node: str, sig: int) -> None:
        proc = self.procs.pop(node, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def stop_all(self) -> None:
        for node in list(self.procs):
            self.stop(node, signal.SIGKILL)


class Keepalived(Cluster):
    def __init__(self, lab: Lab, workdir: Path, advert_int: float) -> None:
        super().__init__(lab, workdir)
        self.advert_int = advert_int
        self.name = f"keepalived advert_int={advert_int:g}s"

    def start(self, node: str) -> None:
        index = NODES.index(node)
        conf = self.workdir / f"keepalived-{node}.conf"
        conf.write_text(f"""
global_defs {{
  router_id {node}
  vrrp_version 3
  enable_script_security
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {200 - index * 10}
  advert_int {self.advert_int}
  virtual_ipaddress {{
    {VIP}/24 dev eth0
  }}
}}
""")
        run = self.workdir / f"run-{node}"
        run.mkdir(exist_ok=True)
        self.procs[node] = self.lab.spawn(
            node, "keepalived", "-n", "-P", "-G", "-f", str(conf), "-p", str(run / "k.pid"),
            "-r", str(run / "v.pid"), "-c", str(run / "c.pid"),
        )


class Metalloid(Cluster):
    def __init__(self, lab: Lab, workdir: Path, interval: float | None) -> None:
        super().__init__(lab, workdir)
        self.name = "metalloid" + (f" interval={interval:g}s" if interval else " (defaults)")
        config = (ROOT / "examples" / "homelab.yaml").read_text()
        membership = ""
        if interval:
            # Same deadline rule as the defaults: 3.5 intervals without a heartbeat.
            membership = f"\n  membership:\n    intervalSeconds: {interval}\n    deadAfterSeconds: {interval * 3.5}"
        config += (
            "\n---\napiVersion: metalloid.io/v1alpha1\nkind: Settings\nmetadata:\n  name: bench\n"
            f"spec:\n  bindLocal: true{membership}\n"
        )
        self.config = workdir / "metalloid.yaml"
        self.config.write_text(config)
        self.key = workdir / "key"
        self.key.write_text(secrets.token_hex(32))

    def start(self, node: str) -> None:
        state = self.workdir / f"state-{node}"
        state.mkdir(exist_ok=True)
        log = open(self.workdir / f"{node}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[node] = self.lab.spawn(
            node, sys.executable, "-m", "supervisor.cli", "run", "--config", str(self.config), "--node", node,
            "--state-dir", str(state), "--membership-key-file", str(self.key), "--metrics-port", "7472",
            stdout=log.fileno(), stderr=subprocess.STDOUT,
        )


def served_by(lab: Lab, timeout: float = 0.5) -> str | None:
    out = lab.run("client", sys.executable, "-m", "supervisor.lab.probe", "--target", f"{VIP}:{PORT}",
                  "--duration", "0.001", "--timeout", str(timeout), check=False)
    sample = parse_line(out.stdout.strip()) if out.stdout.strip() else None
    return sample.served_by if sample else None


def wait_until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def all_members_alive(lab: Lab) -> bool:
    for node in NODES:
        try:
            url = f"http://{lab.host(node).ip}:7472/status"
            out = lab.run("client", sys.executable, "-c",
                          f"import urllib.request;print(urllib.request.urlopen({url!r},timeout=1).read().decode())",
                          check=False)
            members = json.loads(out.stdout)["members"]
        except (ValueError, KeyError):
            return False
        if len([m for m in members if m["alive"]]) != len(NODES):
            return False
    return True


def trial(cluster: Cluster, scenario: str) -> Trial:
    lab = cluster.lab
    cluster.start_all()
    try:
        if not wait_until(lambda: served_by(lab) is not None, 30):
            raise RuntimeError(f"{cluster.name}: nobody serves {VIP} after 30 s")
        if isinstance(cluster, Metalloid) and not wait_until(lambda: all_members_alive(lab), 15):
            raise RuntimeError("metalloid members did not all come up")
        owner = served_by(lab)
        assert owner is not None
        probe = subprocess.Popen(
            ["ip", "netns", "exec", lab.host("client").netns, sys.executable, "-m", "supervisor.lab.probe",
             "--target", f"{VIP}:{PORT}", "--interval", "0.01", "--timeout", "0.05", "--duration", "8"],
            stdout=subprocess.PIPE, text=True,
        )
        time.sleep(1.0)
        failed_at = time.monotonic()
        if scenario in ("death", "linkdown"):
            lab.link(owner, up=False)
        if scenario in ("death", "crash"):
            cluster.stop(owner, signal.SIGKILL)
        elif scenario == "sigterm":
            cluster.stop(owner, signal.SIGTERM)
        out, _ = probe.communicate(timeout=30)
        samples = [s for s in (parse_line(line) for line in out.splitlines()) if s is not None]
        after = next((s for s in samples if s.at >= failed_at and s.served_by not in (None, owner)), None)
        gaps = [o for o in outages([s for s in samples if s.at >= failed_at - 0.05]) if o.before == owner]
        return Trial(
            outage=max((g.seconds for g in gaps), default=0.0) if after else None,
            switch=(after.at - failed_at) if after else None,
            before=owner,
            after=after.served_by if after else None,
        )
    finally:
        cluster.stop_all()
        for node in NODES:
            lab.link(node, up=True)
            # A SIGKILLed keepalived leaves its VIP on eth0 (and metalloid, by
            # design, on lo until its next start): clear both so the next trial
            # starts with no owner.
            lab.run(node, "ip", "addr", "del", f"{VIP}/24", "dev", "eth0", check=False)
            lab.run(node, "ip", "addr", "del", f"{VIP}/32", "dev", "lo", check=False)
        lab.flush_neighbours("client")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarise(name: str, scenario: str, trials: list[Trial]) -> dict[str, object]:
    done = [t for t in trials if t.switch is not None]
    row: dict[str, object] = {"daemon": name, "scenario": scenario, "trials": len(trials), "failed_over": len(done)}
    for metric in ("outage", "switch"):
        values = [getattr(t, metric) for t in done]
        if values:
            row[f"{metric}_p50_ms"] = round(statistics.median(values) * 1000, 1)
            row[f"{metric}_p99_ms"] = round(pct(values, 0.99) * 1000, 1)
            row[f"{metric}_max_ms"] = round(max(values) * 1000, 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--only", choices=("metalloid", "keepalived"), default=None)
    parser.add_argument("--interval", type=float, default=0.1, help="metalloid heartbeat = keepalived advert_int")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/failover.py needs root (network namespaces)", file=sys.stderr)
        return 2
    scenarios = [s for s in args.scenarios.split(",") if s]
    rows: list[dict[str, object]] = []
    workdir = Path(tempfile.mkdtemp(prefix="metalloid-failover-"))
    with Lab(prefix=f"mlb{os.getpid() % 10000}", hosts=[*NODES, "client"], host_index={"client": 100}) as lab:
        for node in NODES:
            lab.spawn(node, sys.executable, "-m", "supervisor.lab.echo", "--name", node, "--port", str(PORT))
        clusters: list[Cluster] = []
        if args.only != "keepalived":
            clusters += [Metalloid(lab, workdir, None), Metalloid(lab, workdir / "same", args.interval)]
        if args.only != "metalloid" and shutil.which("keepalived"):
            clusters += [Keepalived(lab, workdir, 1.0), Keepalived(lab, workdir, args.interval)]
        for cluster in clusters:
            cluster.workdir.mkdir(exist_ok=True, parents=True)
            if isinstance(cluster, Metalloid) and cluster.workdir != workdir:
                cluster.__init__(lab, cluster.workdir, args.interval)  # type: ignore[misc]
            for scenario in scenarios:
                if isinstance(cluster, Keepalived) and scenario == "linkdown":
                    continue  # keepalived has no link tracking configured: it never fails over
                results = [trial(cluster, scenario) for _ in range(args.trials)]
                row = summarise(cluster.name, scenario, results)
                rows.append(row)
                print(json.dumps(row), flush=True)
    by_key = {(r["daemon"], r["scenario"]): r for r in rows}
    print("\nratios (metalloid / keepalived, outage p50, same interval):")
    for scenario in scenarios:
        mine = by_key.get((f"metalloid interval={args.interval:g}s", scenario))
        theirs = by_key.get((f"keepalived advert_int={args.interval:g}s", scenario))
        if mine and theirs and theirs.get("outage_p50_ms"):
            ratio = float(mine.get("outage_p50_ms", 0.0)) / float(theirs["outage_p50_ms"])  # type: ignore[arg-type]
            print(f"  {scenario}: {ratio:.2f}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    _ = urllib.request  # the client-side fetches run inside the lab via subprocess
    sys.exit(main())
