"""`metalloid demo`: the whole job, safely, on the user's own machine.

Builds a private lab (a bridge, nodes n1-n3 and a client, in network
namespaces of its own), runs the homelab example with `metalloid run` on the
three nodes, and shows what an operator cares about: the assignments and pool
counts, the client resolving 10.0.10.10 to the owner's MAC and reaching a
service behind it, the owner's power cut and the outage the client measured
until another node answered, and why pi-hole is still pending. Everything is
torn down at the end, on Ctrl-C and on failure, unless `--keep`.

The steps are plain functions over a `Lab`, so the end-to-end test drives the
same code as a user and asserts on the returned `DemoResult`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from supervisor.lab.netns import Lab
from supervisor.lab.nodes import HTTP_PORT as METRICS_PORT
from supervisor.lab.nodes import spawn_node
from supervisor.lab.probe import outages, parse_line

NODES = ("n1", "n2", "n3")
CLIENT = "client"
SERVICE_IP = "10.0.10.10"
APP_PORT = 8080

DEMO_SETTINGS = """
---
# Added by `metalloid demo`: bind announced IPs on the owner's loopback so the
# small app on each node can serve 10.0.10.10 (standalone opt-in).
apiVersion: metalloid.io/v1alpha1
kind: Settings
metadata:
  name: demo
spec:
  bindLocal: true
"""


@dataclass
class DemoResult:
    """What the demo observed; the end-to-end test asserts on these fields."""

    ok: bool = False
    services: list[dict[str, Any]] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)
    owner_before: str | None = None
    owner_mac: str | None = None
    client_saw_mac: str | None = None
    client_reached: str | None = None
    owner_after: str | None = None
    outage_seconds: float | None = None
    unanswered_ip_resolved: bool | None = None
    pending: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def homelab_config() -> Path:
    """The bundled homelab example (the runbook's manifests), next to the package."""
    return Path(__file__).resolve().parents[2] / "examples" / "homelab.yaml"


class Demo:
    def __init__(self, *, prefix: str, say: Callable[[str], None], workdir: Path) -> None:
        self.lab = Lab(prefix=prefix, hosts=[*NODES, CLIENT], host_index={CLIENT: 100})
        self.say = say
        self.workdir = workdir
        self.metalloid: dict[str, subprocess.Popen[bytes]] = {}
        self.result = DemoResult()

    # -- helpers ------------------------------------------------------------

    def http_json(self, node: str, path: str) -> Any:
        """GET a node's endpoint from the client namespace (as an operator would)."""
        url = f"http://{self.lab.host(node).ip}:{METRICS_PORT}{path}"
        code = (
            "import sys,urllib.request;"
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1],timeout=2).read().decode())"
        )
        out = self.lab.run(CLIENT, sys.executable, "-c", code, url, check=False, timeout=10)
        if out.returncode != 0:
            return None
        try:
            return json.loads(out.stdout) if path != "/readyz" else out.stdout
        except ValueError:
            return None

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.2)
        self.result.problems.append(f"timed out after {timeout:.0f}s waiting for {what}")
        return False

    def probe_once(self) -> str | None:
        out = self.lab.run(
            CLIENT, sys.executable, "-m", "supervisor.lab.probe", "--target", f"{SERVICE_IP}:{APP_PORT}",
            "--duration", "0.001", "--timeout", "1", check=False,
        )
        sample = parse_line(out.stdout.strip().splitlines()[0]) if out.stdout.strip() else None
        return sample.served_by if sample else None

    # -- steps ----------------------------------------------------------------

    def build(self) -> None:
        self.say("building the lab: bridge, nodes n1 n2 n3 (10.0.10.1-3), client (10.0.10.100)")
        self.lab.create()

    def start_nodes(self) -> None:
        config = self.workdir / "homelab.yaml"
        config.write_text(homelab_config().read_text() + DEMO_SETTINGS)
        key = self.workdir / "membership.key"
        key.write_text(secrets.token_hex(32))
        key.chmod(0o600)
        for node in NODES:
            self.metalloid[node] = spawn_node(self.lab, node, config=config, key=key, workdir=self.workdir)
            self.lab.spawn(node, sys.executable, "-m", "supervisor.lab.echo", "--name", node, "--port", str(APP_PORT))
        self.say("started `metalloid run --config homelab.yaml --node nX` on n1, n2, n3; waiting until ready")
        self.wait("every node's /readyz", lambda: all(self.http_json(n, "/readyz") for n in NODES), 30)

    def show_assignments(self) -> None:
        status = self.http_json(NODES[0], "/status") or {}
        self.result.services = status.get("services", [])
        self.result.pools = status.get("pools", [])
        for svc in self.result.services:
            where = ", ".join(svc.get("ips") or []) or "<pending>"
            # A node sees only its own announcements; the election says who
            # announces everywhere (every node computes the same winner).
            owners = ", ".join(
                f"{e['winner']} ({proto})" for proto, e in (svc.get("elections") or {}).items() if e.get("winner")
            )
            self.say(f"  {svc['namespace']}/{svc['name']}: {where}" + (f"  announced by {owners}" if owners else ""))
            if svc.get("pending"):
                self.result.pending[f"{svc['namespace']}/{svc['name']}"] = svc["pending"]
        for pool in self.result.pools:
            self.say(
                f"  pool {pool['name']}: {pool['total_v4']} total, {pool['assigned_v4']} assigned, "
                f"{pool['available_v4']} available"
            )

    def client_reaches_service(self) -> None:
        self.lab.flush_neighbours(CLIENT)
        ok = self.wait(f"the client to reach {SERVICE_IP}:{APP_PORT}", lambda: self.probe_once() is not None, 10)
        if not ok:
            return
        self.result.client_reached = self.probe_once()
        self.result.owner_before = self.result.client_reached
        mac, _ = self.lab.neighbour(CLIENT, SERVICE_IP)
        self.result.client_saw_mac = mac
        if self.result.owner_before:
            self.result.owner_mac = self.lab.mac(self.result.owner_before)
        self.say(
            f"client: {SERVICE_IP} is at {mac} ({self.result.owner_before}'s eth0); "
            f"tcp {SERVICE_IP}:{APP_PORT} answered by {self.result.client_reached}"
        )
        # An address in the pool that nobody was given must get no ARP answer.
        arping = self.lab.run(CLIENT, "arping", "-c", "2", "-w", "1", "-i", "eth0", "10.0.10.11", check=False)
        self.result.unanswered_ip_resolved = arping.returncode == 0
        self.say(f"client: 10.0.10.11 (unassigned) answered by nobody: {not self.result.unanswered_ip_resolved}")

    def fail_owner(self) -> None:
        owner = self.result.owner_before
        if owner is None:
            return
        self.say(f"power cut on {owner}: cable pulled and metalloid killed (SIGKILL); the client probes every 10 ms")
        probe = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.host(CLIENT).netns, sys.executable, "-m", "supervisor.lab.probe",
             "--target", f"{SERVICE_IP}:{APP_PORT}", "--interval", "0.01", "--timeout", "0.05", "--duration", "6"],
            stdout=subprocess.PIPE, text=True,
        )
        time.sleep(1.0)
        self.lab.link(owner, up=False)
        os.killpg(self.metalloid[owner].pid, signal.SIGKILL)
        out, _ = probe.communicate(timeout=30)
        samples = [s for s in (parse_line(line) for line in out.splitlines()) if s is not None]
        gaps = [o for o in outages(samples) if o.before == owner]
        if gaps:
            self.result.outage_seconds = round(gaps[0].seconds, 3)
            self.result.owner_after = gaps[0].after
            self.say(f"client: answered again by {gaps[0].after} after {gaps[0].seconds * 1000:.0f} ms")
        else:
            served = {s.served_by for s in samples[-20:]}
            self.result.problems.append(f"no failover seen by the client (last answers from {served})")

    def show_pending(self) -> None:
        survivor = self.result.owner_after or next(n for n in NODES if n != self.result.owner_before)
        status = self.http_json(survivor, "/status") or {}
        for svc in status.get("services", []):
            if svc.get("pending"):
                name = f"{svc['namespace']}/{svc['name']}"
                self.result.pending[name] = svc["pending"]
                self.say(f"  {name} stays pending: {svc['pending']}")

    def run(self) -> DemoResult:
        self.build()
        self.start_nodes()
        self.say("assignments (from n1's /status):")
        self.show_assignments()
        self.client_reaches_service()
        self.fail_owner()
        self.say("why pi-hole has no IP (`metalloid explain pihole/pi-hole`):")
        self.show_pending()
        r = self.result
        r.ok = (
            not r.problems
            and r.client_saw_mac is not None
            and r.client_saw_mac == r.owner_mac
            and r.owner_after not in (None, r.owner_before)
            and r.unanswered_ip_resolved is False
        )
        return r

    def explore_hint(self) -> str:
        ns = {h.name: h.netns for h in self.lab.all_hosts()}
        return "\n".join([
            "The lab is still up. Explore it:",
            f"  ip netns exec {ns[CLIENT]} ip neigh               # the client's ARP table",
            f"  ip netns exec {ns[CLIENT]} arping -c1 {SERVICE_IP}",
            f"  ip netns exec {ns['n2']} {sys.executable} -m supervisor.cli status",
            f"  ip netns exec {ns['n2']} {sys.executable} -m supervisor.cli explain pihole/pi-hole",
            f"  logs: {self.workdir}/n*.log",
            "Remove it with:",
            "  kill " + " ".join(str(p.pid) for p in self.lab.running()) + "   # metalloid, the app and the probe",
            "  " + " && ".join(f"ip netns del {n}" for n in [*ns.values(), self.lab.bridge_ns]),
        ])


def run_demo(*, keep: bool = False, say: Callable[[str], None] = print, prefix: str = "mld") -> DemoResult:
    workdir = Path(tempfile.mkdtemp(prefix="metalloid-demo-"))
    demo = Demo(prefix=prefix, say=say, workdir=workdir)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        result = demo.run()
    except KeyboardInterrupt:
        say("interrupted: tearing the lab down")
        keep = False
        raise
    except Exception as exc:
        demo.result.problems.append(f"{type(exc).__name__}: {exc}")
        result = demo.result
    finally:
        signal.signal(signal.SIGTERM, previous)
        if keep:
            say(demo.explore_hint())
        else:
            demo.lab.destroy()
    return result


def summary(result: DemoResult) -> str:
    lines = ["", "summary:"]
    lines.append(f"  ingress-nginx/ingress-nginx-controller: {SERVICE_IP} on {result.owner_before or '?'}")
    if result.outage_seconds is not None:
        outage_ms = result.outage_seconds * 1000
        lines.append(f"  failover {result.owner_before} -> {result.owner_after}: client outage {outage_ms:.0f} ms")
    for name, reason in result.pending.items():
        lines.append(f"  {name}: pending ({reason})")
    for problem in result.problems:
        lines.append(f"  PROBLEM: {problem}")
    lines.append("  result: " + ("OK" if result.ok else "FAILED"))
    return "\n".join(lines)


def result_json(result: DemoResult) -> str:
    return json.dumps(asdict(result), indent=2)
