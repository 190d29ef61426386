"""Memory (PSS) of a `metalloid speaker` with 1,000 Services, against the fake API server.

    .venv/bin/python bench/speaker_memory.py [--services 1000] [--runs 3]

As root: the bench makes a one-host lab (supervisor/lab/netns.py, host n1),
joins n1's network namespace and starts there the fake API server
(`python -m tests.fakeapi`, seeded with MetalLB's runbook objects, Nodes n1
and n2, their speaker Pods, and `--services` Services whose IPs the controller
already wrote in their status, each with a ready EndpointSlice on n1) and a real
`metalloid speaker --node n1` with the DaemonSet's arguments (layer 2
announcer, membership with peer n2, plain-HTTP API, `--insecure`). Once
/readyz is 200 and the announcer has reported its plan for every Service
(an election each in /status), it prints the PSS of
the speaker's processes (supervisor, workers, forkserver; not the fake API
server). Bytecode is cached under a private PYTHONPYCACHEPREFIX as in
bench/runtime.py, filled by a warm-up start.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runtime import other_name, restarted  # noqa: E402
from supervisor.lab.netns import Lab, enter_netns, require_root  # noqa: E402
from tests.runbook import RUNBOOK_L2  # noqa: E402
from tests.runtime_helpers import (  # noqa: E402
    METALLOID,
    descendants_of,
    free_port,
    get_json,
    get_text,
    pss_kib,
    run_env,
    wait_for,
)

NAMESPACE = "metallb-system"


def service_ip(i: int) -> str:
    return f"10.20.{i // 250}.{i % 250 + 1}"


def seed_objects(services: int) -> list[dict[str, Any]]:
    """A cluster whose controller already assigned every Service's IP."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in (NAMESPACE, "default")
    ]
    objects.append({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": {"name": "first-pool", "namespace": NAMESPACE},
                    "spec": {"addresses": ["10.20.0.0/16"]}})
    objects.append(yaml.safe_load(RUNBOOK_L2))
    for n, node in enumerate(("n1", "n2"), start=1):
        ip = f"10.0.10.{n}"
        objects.append({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                        "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
        objects.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"speaker-{node}", "namespace": NAMESPACE,
                                     "labels": {"app": "metalloid", "component": "speaker"}},
                        "spec": {"nodeName": node, "hostNetwork": True},
                        "status": {"phase": "Running", "hostIP": ip, "podIP": ip}})
    for i in range(services):
        name = f"svc-{i}"
        objects.append({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": "default",
                                     "annotations": {"metallb.io/ip-allocated-from-pool": "first-pool"}},
                        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
                        "status": {"loadBalancer": {"ingress": [{"ip": service_ip(i)}]}}})
        objects.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": f"{name}-abcde", "namespace": "default",
                                     "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": [f"10.244.{i // 250}.{i % 250 + 1}"], "nodeName": "n1",
                                       "conditions": {"ready": True, "serving": True, "terminating": False}}],
                        "ports": [{"port": 80, "protocol": "TCP"}]})
    return objects


class Cluster:
    """The fake API server, a child of this process (so in n1's namespace)."""

    def __init__(self, tmp: Path, services: int) -> None:
        seed = tmp / "seed.yaml"
        seed.write_text(yaml.safe_dump_all(seed_objects(services)))
        self.port = free_port()
        self.log = tmp / "api.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fakeapi", "--port", str(self.port),
                                      "--seed", str(seed)], cwd=ROOT, env=run_env(),
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: "listening" in self.log.read_text(), 120, interval=0.1, what="the fake API server")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


class Speaker:
    def __init__(self, tmp: Path, api: str, pycache: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = run_env(PYTHONPYCACHEPREFIX=str(pycache), NODE_NAME="n1", POD_NAME="speaker-n1",
                      METALLOID_NAMESPACE=NAMESPACE)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("METALLOID_EXTRA_PLUGINS", None)  # the speaker as deployed: the shipped plugins only
        env.pop("KUBERNETES_SERVICE_HOST", None)
        tmp.mkdir(parents=True, exist_ok=True)
        argv = [str(METALLOID), "speaker", "--node", "n1", "--namespace", NAMESPACE, "--insecure",
                "--api-server", api, "--state-dir", str(tmp / "state"),
                "--metrics-port", str(self.port), "--metrics-host", "127.0.0.1"]
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=(tmp / "stderr.log").open("wb"), start_new_session=True)

    def ready(self) -> bool:
        return get_text(f"{self.url}/readyz")[0] == 200

    def announcing(self, services: int) -> bool:
        """The layer 2 announcer has planned every Service (an election each) and reported it.

        Only then does the supervisor hold the announcer's report of all of
        them; /status listing the Services (the watcher's config) came first,
        and PSS read then missed the announcer's plan and its report.
        """
        status = get_json(f"{self.url}/status", timeout=5)
        elections = status.get("plugins", {}).get("layer2", {}).get("elections", [])
        return len(status.get("services", [])) >= services and len(elections) >= services

    def memory(self, services: int) -> float:
        time.sleep(1.0)  # let the first status reports and GC settle
        pids = [self.proc.pid, *descendants_of(self.proc.pid)]
        sizes = {p: pss_kib(p) for p in pids}
        workers = get_json(f"{self.url}/status")["workers"]
        names = {int(str(w["pid"])): str(w["name"]) for w in workers if w.get("pid")}
        parts = ", ".join(f"{names.get(p, 'supervisor' if p == self.proc.pid else other_name(p))} {kib / 1024:.1f}"
                          for p, kib in sizes.items())
        total = sum(sizes.values()) / 1024
        print(f"speaker PSS total ({len(pids)} processes, {services} services): {total:.1f} MiB ({parts})"
              f"{restarted({str(w['name']): w for w in workers})}", flush=True)
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)


def measure(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="mlt-speaker-") as tmpdir:
        tmp = Path(tmpdir)
        pycache = tmp / "pycache"
        cluster = Cluster(tmp, args.services)
        try:
            warm = Speaker(tmp / "warm", cluster.url, pycache)
            try:
                wait_for(warm.ready, 120, what="warm-up ready")
            finally:
                warm.stop()
            totals = []
            for i in range(args.runs):
                speaker = Speaker(tmp / f"run{i}", cluster.url, pycache)
                try:
                    wait_for(speaker.ready, 120, what="ready")
                    wait_for(lambda s=speaker: s.announcing(args.services), 120, interval=0.5,  # type: ignore[misc]
                             what="the Services in /status")
                    totals.append(speaker.memory(args.services))
                finally:
                    speaker.stop()
            if totals:
                print(f"speaker PSS over {len(totals)} runs: {min(totals):.1f} to {max(totals):.1f} MiB")
        finally:
            cluster.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="speakers started and measured one after the other")
    args = parser.parse_args()
    problem = require_root()
    if problem:
        print(f"bench/speaker_memory.py: {problem}", file=sys.stderr)
        return 1
    with Lab(prefix=f"mls{os.getpid() % 100000}", hosts=["n1"]) as lab:
        lab.run("n1", "ip", "link", "set", "lo", "up")
        enter_netns(lab.host("n1").netns)
        return measure(args)


if __name__ == "__main__":
    sys.exit(main())
