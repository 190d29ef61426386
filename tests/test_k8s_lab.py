"""Kubernetes mode end to end: real `metalloid controller` and `metalloid speaker` processes in a lab.

The fake API server (`python -m tests.fakeapi`) runs as a process in the
client's namespace at 10.0.10.100:6443; the controller runs there too, and one
speaker per node namespace (n1-n3, 10.0.10.1-3) with the DaemonSet's arguments
and environment, all reaching the API through a kubeconfig. The speakers find
each other through the speaker Pods seeded in the API, and answer ARP from the
nodes' eth0. In Kubernetes mode metalloid never binds the IP (kube-proxy owns
the traffic), so the checks are at the ARP level: which MAC answers for the
Service's IP, from the client's namespace.

One lab for the module (starting it costs seconds); the tests run in order and
later ones build on earlier ones (the failover leaves a new winner, the outage
kills the API server).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import yaml

from supervisor.lab.netns import Lab, require_root
from tests.runbook import RUNBOOK_L2, RUNBOOK_POOL
from tests.runtime_helpers import wait_for as shared_wait_for

T = TypeVar("T")

NODES = ("n1", "n2", "n3")
CLIENT = "client"
API_PORT = 6443
METRICS_PORT = 7472
SERVICE_IP = "10.0.10.10"
UNASSIGNED_IP = "10.0.10.11"
SERVICE_NS, SERVICE_NAME = "ingress-nginx", "ingress-nginx-controller"
SERVICE_PATH = f"/api/v1/namespaces/{SERVICE_NS}/services/{SERVICE_NAME}"
SLICE_PATH = f"/apis/discovery.k8s.io/v1/namespaces/{SERVICE_NS}/endpointslices/{SERVICE_NAME}-abcde"
BAD_NAME = "both-ip-fields"
POOL_PATH = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/first-pool"
EVENTS_PATH = f"/api/v1/namespaces/{SERVICE_NS}/events"
L2STATUS_PATH = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses"
CONFIGSTATE_PATH = "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates"
REPLY = re.compile(r"bytes from ([0-9a-f:]{17}) \(")


def node_ip(node: str) -> str:
    return f"10.0.10.{NODES.index(node) + 1}"


def seed_objects() -> list[dict[str, Any]]:
    """What a cluster running the runbook holds before metalloid starts."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ("metallb-system", SERVICE_NS)
    ]
    objects += [yaml.safe_load(RUNBOOK_POOL), yaml.safe_load(RUNBOOK_L2)]
    for node in NODES:
        objects.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
            "status": {"addresses": [{"type": "InternalIP", "address": node_ip(node)},
                                     {"type": "Hostname", "address": node}]},
        })
        objects.append({  # the DaemonSet's pod on this node (hostNetwork: podIP = hostIP)
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"speaker-{node}", "namespace": "metallb-system",
                         "labels": {"app": "metalloid", "component": "speaker"}},
            "spec": {"nodeName": node, "hostNetwork": True},
            "status": {"phase": "Running", "hostIP": node_ip(node), "podIP": node_ip(node)},
        })
    objects.append({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NS},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    })
    # MetalLB announces a Service only while an endpoint can serve it.
    objects.append({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{SERVICE_NAME}-abcde", "namespace": SERVICE_NS,
                     "labels": {"kubernetes.io/service-name": SERVICE_NAME}},
        "addressType": "IPv4",
        "endpoints": [endpoint(ready=True)],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    })
    # Issue 11: a Service asking for its IP twice fails alone; every test below
    # runs with it present, so the runbook's Service is served around it.
    objects.append({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": BAD_NAME, "namespace": SERVICE_NS,
                     "annotations": {"metallb.io/loadBalancerIPs": "10.0.10.21"}},
        "spec": {"type": "LoadBalancer", "loadBalancerIP": "10.0.10.20",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    })
    return objects


def endpoint(*, ready: bool) -> dict[str, Any]:
    """The controller pod's endpoint on n1; not ready means terminating (as a rollout leaves it)."""
    return {"addresses": ["10.244.0.5"], "nodeName": "n1",
            "conditions": {"ready": ready, "serving": ready, "terminating": not ready}}


KUBECONFIG = f"""\
apiVersion: v1
kind: Config
clusters: [{{name: lab, cluster: {{server: "http://10.0.10.100:{API_PORT}"}}}}]
users: [{{name: lab, user: {{}}}}]
contexts: [{{name: lab, context: {{cluster: lab, user: lab}}}}]
current-context: lab
"""


def wait_for(check: Callable[[], T], *, timeout: float, what: str, every: float = 0.05) -> T:
    """The shared poll at the lab's pace: a check here may run a command in a namespace."""
    return shared_wait_for(check, timeout, every, what)


@dataclass
class K8sLab:
    lab: Lab
    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def spawn(self, name: str, host: str, *argv: str, env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed at teardown
        self._logs.append(log)
        self.procs[name] = self.lab.spawn(host, *argv, stdout=log.fileno(), stderr=subprocess.STDOUT, env=env)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        """SIGKILL the process group of one process we started (by its PID)."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def get_json(self, url: str, host: str = CLIENT) -> Any:
        out = self.lab.run(host, "curl", "-sf", "--max-time", "2", url, check=False, timeout=10)
        if out.returncode != 0:
            return None
        try:
            return json.loads(out.stdout)
        except ValueError:
            return None

    def api(self, path: str) -> dict[str, Any]:
        """GET from the fake API server; {} when it does not answer."""
        found = self.get_json(f"http://10.0.10.100:{API_PORT}{path}")
        return found if isinstance(found, dict) else {}

    def status(self, node: str) -> dict[str, Any] | None:
        found = self.get_json(f"http://127.0.0.1:{METRICS_PORT}/status", host=node)
        return found if isinstance(found, dict) else None

    def winner(self, node: str) -> str | None:
        """The layer 2 election winner for the Service, as `node`'s speaker sees it."""
        for svc in (self.status(node) or {}).get("services", []):
            if (svc["namespace"], svc["name"]) == (SERVICE_NS, SERVICE_NAME):
                election = (svc.get("elections") or {}).get("layer2") or {}
                return election.get("winner")
        return None

    def elected(self, node: str, timeout: float = 10.0) -> str:
        found = wait_for(lambda: self.winner(node), timeout=timeout, what=f"{node}'s layer 2 election")
        assert found is not None
        return found

    def answering_macs(self, ip: str, count: int = 2) -> set[str]:
        """The MACs answering an ARP request for `ip` from the client (fresh requests, no cache)."""
        out = self.lab.run(CLIENT, "arping", "-c", str(count), "-W", "0.2", "-w", "1", "-i", "eth0", ip,
                           check=False, timeout=10)
        return {m.lower() for m in REPLY.findall(out.stdout)}

    def patch(self, path: str, body: dict[str, Any]) -> None:
        """A merge patch to the fake API server."""
        self.lab.run(CLIENT, "curl", "-sf", "--max-time", "2", "-X", "PATCH", "-H",
                     "Content-Type: application/merge-patch+json", "--data", json.dumps(body),
                     f"http://10.0.10.100:{API_PORT}{path}", timeout=10)

    def metrics(self, host: str) -> str:
        out = self.lab.run(host, "curl", "-sf", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/metrics",
                           check=False, timeout=10)  # fmt: skip
        return out.stdout if out.returncode == 0 else ""

    def l2_statuses(self) -> list[tuple[str, str, str, list[str], str]]:
        """(node label, status node, service, interfaces, owner pod) of every ServiceL2Status."""
        found = []
        for obj in self.api(L2STATUS_PATH).get("items", []):
            meta, status = obj["metadata"], obj.get("status") or {}
            owners = [o["name"] for o in meta.get("ownerReferences") or []]
            found.append((meta["labels"]["metallb.io/node"], status.get("node", ""),
                          f"{status.get('serviceNamespace')}/{status.get('serviceName')}",
                          [i["name"] for i in status.get("interfaces") or []], ",".join(owners)))  # fmt: skip
        return found

    def node_events(self) -> list[dict[str, Any]]:
        items = self.api(EVENTS_PATH).get("items", [])
        return [e for e in items if e["involvedObject"]["name"] == SERVICE_NAME and e["reason"] == "nodeAssigned"]

    def close(self) -> None:
        try:
            self.lab.destroy()  # every process by its PID's group, then the namespaces
        finally:
            for log in self._logs:
                log.close()


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sLab]:
    why = require_root()
    if why:
        # Like every lab test: CI runs as root, so a missing privilege is a failure, not a skip.
        pytest.fail(why)
    workdir = tmp_path_factory.mktemp("k8slab")
    (workdir / "seed.yaml").write_text(yaml.safe_dump_all(seed_objects()))
    (workdir / "kubeconfig").write_text(KUBECONFIG)
    key = workdir / "secretkey"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    lab = Lab(prefix=f"mlt{os.getpid() % 10000}q", hosts=[*NODES, CLIENT], host_index={CLIENT: 100})
    cluster = K8sLab(lab=lab, workdir=workdir)
    try:
        lab.create()
        py = sys.executable
        cluster.spawn("api", CLIENT, py, "-m", "tests.fakeapi", "--host", "0.0.0.0", "--port", str(API_PORT),
                      "--seed", str(workdir / "seed.yaml"), "--bookmark-interval", "0.5")
        wait_for(lambda: "listening" in cluster.log("api"), timeout=15, what="the fake API server")
        kubeconfig = str(workdir / "kubeconfig")
        # As the Deployment and the DaemonSet run them (deploy/base), with a kubeconfig
        # instead of the service account.
        env = {**os.environ, "METALLOID_NAMESPACE": "metallb-system", "POD_NAME": "controller-lab"}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        cluster.spawn("controller", CLIENT, py, "-m", "supervisor.cli", "controller", "--kubeconfig", kubeconfig,
                      "--metrics-port", str(METRICS_PORT), env=env)
        for node in NODES:
            cluster.spawn(node, node, py, "-m", "supervisor.cli", "speaker", "--node", node,
                          "--namespace", "metallb-system", "--membership-key-file", str(key),
                          "--metrics-port", str(METRICS_PORT), "--kubeconfig", kubeconfig, "--log-format", "json",
                          "--state-dir", str(workdir / f"state-{node}"),
                          env={**env, "NODE_NAME": node, "POD_NAME": f"speaker-{node}"})
        for node in NODES:
            wait_for(lambda node=node: cluster.lab.run(  # type: ignore[misc]
                node, "curl", "-sf", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/readyz", check=False
            ).returncode == 0, timeout=30, what=f"{node}'s speaker /readyz", every=0.2)
        yield cluster
    finally:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None and name in NODES and proc.returncode not in (0, -signal.SIGKILL):
                print(f"--- {name} exited {proc.returncode}:\n{cluster.log(name)[-3000:]}")
        cluster.close()


@pytest.mark.lab
def test_controller_writes_the_ip_the_event_and_the_pool_counts(k8s: K8sLab) -> None:
    def ingress() -> list[str]:
        svc = k8s.api(SERVICE_PATH)
        return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]

    assert wait_for(ingress, timeout=15, what="the Service's status") == [SERVICE_IP]
    svc = k8s.api(SERVICE_PATH)
    assert svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "first-pool"
    events = k8s.api(EVENTS_PATH).get("items", [])
    assert [(e["type"], e["reason"], e["message"]) for e in events if e["reason"] == "IPAllocated"] == [
        ("Normal", "IPAllocated", f'Assigned IP ["{SERVICE_IP}"]')
    ]
    status = wait_for(lambda: dict(k8s.api(POOL_PATH).get("status") or {}), timeout=10, what="the pool status")
    assert (status["assignedIPv4"], status["availableIPv4"]) == (1, 89)


@pytest.mark.lab
def test_a_service_with_both_ip_fields_fails_alone_in_controller_and_speakers(k8s: K8sLab) -> None:
    events = wait_for(lambda: [e for e in k8s.api(EVENTS_PATH).get("items", [])
                               if e["involvedObject"]["name"] == BAD_NAME], timeout=15, what="its event")
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "AllocationFailed")]
    assert f'Failed to allocate IP for "{SERVICE_NS}/{BAD_NAME}": both spec.loadBalancerIP' in events[0]["message"]
    bad = k8s.api(f"/api/v1/namespaces/{SERVICE_NS}/services/{BAD_NAME}")
    assert not ((bad.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    for host in (CLIENT, *NODES):  # the controller's /status, then each speaker's
        status = wait_for(lambda host=host: k8s.get_json(  # type: ignore[misc]
            f"http://127.0.0.1:{METRICS_PORT}/status", host=host), timeout=10, what=f"{host}'s /status")
        assert status["config"]["loaded"] and not status["config"]["stale"], (host, status["config"])
        assert any(f"Service/{SERVICE_NS}/{BAD_NAME}: both" in e for e in status["config"]["object_errors"]), host
    assert k8s.answering_macs("10.0.10.20") == set() and k8s.answering_macs("10.0.10.21") == set()
    # The runbook's Service keeps its IP and is announced around it, by the node every speaker elects.
    svc = k8s.api(SERVICE_PATH)
    assert [i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]] == [SERVICE_IP]
    winners = {node: k8s.elected(node) for node in NODES}
    assert len(set(winners.values())) == 1, winners
    assert wait_for(lambda: k8s.answering_macs(SERVICE_IP), timeout=5, what="an ARP answer") == {
        k8s.lab.mac(winners["n1"])}


@pytest.mark.lab
def test_an_invalid_pool_keeps_the_last_good_config_and_marks_it_stale(k8s: K8sLab) -> None:
    # An overlap: valid for the CRD's rules, so the API takes it; the controller and speakers must refuse it.
    broken = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
              "metadata": {"name": "overlapping", "namespace": "metallb-system"},
              "spec": {"addresses": ["10.0.10.50-10.0.10.60"]}}
    pools = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools"
    base = f"http://10.0.10.100:{API_PORT}{pools}"
    k8s.lab.run(CLIENT, "curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json", "-d",
                json.dumps(broken), base, timeout=10)
    winner = k8s.elected("n1")

    def metric(host: str, name: str) -> float | None:
        out = k8s.lab.run(host, "curl", "-sf", "--max-time", "2", f"http://127.0.0.1:{METRICS_PORT}/metrics",
                          check=False, timeout=10)
        found = re.search(rf"^{name} (\S+)$", out.stdout, re.M)
        return float(found.group(1)) if found else None

    try:
        for host in (CLIENT, *NODES):
            wait_for(lambda host=host: metric(host, "metallb_k8s_client_config_stale_bool") == 1,  # type: ignore[misc]
                     timeout=10, what=f"{host} to mark its config stale")
            assert metric(host, "metallb_k8s_client_config_loaded_bool") == 1
            status = k8s.get_json(f"http://127.0.0.1:{METRICS_PORT}/status", host=host)
            assert any("overlapping" in e and "overlaps" in e for e in status["config"]["errors"]), host
        # The last good config stays in force: same winner, same ARP answers.
        assert k8s.elected("n1") == winner
        assert k8s.answering_macs(SERVICE_IP) == {k8s.lab.mac(winner)}
    finally:
        k8s.lab.run(CLIENT, "curl", "-sf", "-X", "DELETE", f"{base}/overlapping", check=False, timeout=10)
    for host in (CLIENT, *NODES):
        wait_for(lambda host=host: metric(host, "metallb_k8s_client_config_stale_bool") == 0,  # type: ignore[misc]
                 timeout=10, what=f"{host} to load the fixed config")


@pytest.mark.lab
def test_exactly_the_elected_node_answers_arp_for_the_service_ip(k8s: K8sLab) -> None:
    winners = {node: k8s.elected(node) for node in NODES}
    assert len(set(winners.values())) == 1, f"the speakers disagree on the winner: {winners}"
    winner = winners["n1"]
    macs = {node: k8s.lab.mac(node) for node in NODES}
    assert wait_for(lambda: k8s.answering_macs(SERVICE_IP), timeout=5, what="an ARP answer") == {macs[winner]}
    k8s.lab.flush_neighbours(CLIENT)
    k8s.lab.run(CLIENT, "ping", "-c", "1", "-W", "1", SERVICE_IP, check=False)  # no IP bound: no echo, but ARP
    assert k8s.lab.neighbour(CLIENT, SERVICE_IP)[0] == macs[winner]
    assert k8s.answering_macs(UNASSIGNED_IP) == set()


@pytest.mark.lab
def test_only_the_announcing_speaker_emits_node_assigned(k8s: K8sLab) -> None:
    winner = k8s.elected("n1")
    expected = f'announcing from node "{winner}" with protocol "layer2"'
    events = wait_for(k8s.node_events, timeout=10, what="a nodeAssigned event")
    # Every speaker has been ready with a membership view for a while (the fixture
    # waited for /readyz, the ARP test ran): a loser that would report has reported.
    assert [(e["type"], e["message"], e["source"]["host"]) for e in events] == [("Normal", expected, winner)]


@pytest.mark.lab
def test_a_service_whose_endpoints_all_go_away_is_not_announced_and_explain_says_why(k8s: K8sLab) -> None:
    winner = k8s.elected("n1")
    macs = {node: k8s.lab.mac(node) for node in NODES}
    assert wait_for(lambda: k8s.answering_macs(SERVICE_IP), timeout=5, what="an ARP answer") == {macs[winner]}
    k8s.patch(SLICE_PATH, {"endpoints": [endpoint(ready=False)]})
    try:
        for node in NODES:
            wait_for(lambda node=node: k8s.winner(node) is None, timeout=10,  # type: ignore[misc]
                     what=f"{node} to stop electing anyone")
        assert wait_for(lambda: k8s.answering_macs(SERVICE_IP) == set(), timeout=5, what="ARP to go quiet")
        explained = k8s.lab.run(winner, sys.executable, "-m", "supervisor.cli", "explain",
                                f"{SERVICE_NS}/{SERVICE_NAME}", "--endpoint", f"http://127.0.0.1:{METRICS_PORT}",
                                check=False, timeout=20)
        assert "Announced (layer2): no." in explained.stdout, explained.stdout + explained.stderr
        assert "the Service has no serving endpoint" in explained.stdout, explained.stdout
        assert "kubectl -n ingress-nginx get endpointslices" in explained.stdout, explained.stdout
    finally:
        k8s.patch(SLICE_PATH, {"endpoints": [endpoint(ready=True)]})
    # A serving endpoint again: the same node (MetalLB's ranking did not change) answers again.
    assert wait_for(lambda: k8s.answering_macs(SERVICE_IP), timeout=10, what="ARP again") == {macs[winner]}


@pytest.mark.lab
def test_the_announcing_speaker_writes_service_l2_status_from_what_it_really_does(k8s: K8sLab) -> None:
    winner = k8s.elected("n1")
    # The lab nodes answer on eth0 (their only suitable interface), and the status says so.
    expected = [(winner, winner, f"{SERVICE_NS}/{SERVICE_NAME}", ["eth0"], f"speaker-{winner}")]
    assert wait_for(lambda: k8s.l2_statuses() == expected, timeout=10, what=f"the ServiceL2Status of {winner}")
    [obj] = k8s.api(L2STATUS_PATH)["items"]
    assert obj["metadata"]["name"].startswith("l2-")
    assert obj["metadata"]["labels"] == {"metallb.io/node": winner, "metallb.io/service-name": SERVICE_NAME,
                                         "metallb.io/service-namespace": SERVICE_NS}  # fmt: skip


@pytest.mark.lab
def test_every_component_writes_its_configuration_state(k8s: K8sLab) -> None:
    def states() -> dict[str, tuple[str, dict[str, str], list[tuple[str, str]]]]:
        return {o["metadata"]["name"]: ((o.get("status") or {}).get("result", ""), o["metadata"].get("labels") or {},
                                        [(c["type"], c["status"]) for c in (o.get("status") or {}).get("conditions")
                                         or []])
                for o in k8s.api(CONFIGSTATE_PATH).get("items", [])}  # fmt: skip

    wanted = {"controller", *(f"speaker-{n}" for n in NODES)}
    found = wait_for(lambda: (lambda s: s if set(s) == wanted and all(v[0] == "Valid" for v in s.values()) else None)(
        states()), timeout=10, what="a Valid ConfigurationState per component")  # fmt: skip
    assert found["controller"] == ("Valid", {"metallb.io/component-type": "controller"},
                                   [("configReconcilerValid", "True"), ("poolReconcilerValid", "True")])
    for node in NODES:
        assert found[f"speaker-{node}"] == ("Valid", {"metallb.io/component-type": "speaker",
                                                      "metallb.io/node-name": node},
                                            [("configReconcilerValid", "True")])  # fmt: skip


@pytest.mark.lab
def test_pool_series_come_from_the_controller_only_and_speaker_series_from_the_announcer(k8s: K8sLab) -> None:
    winner = k8s.elected("n1")
    controller = wait_for(lambda: k8s.metrics(CLIENT), timeout=10, what="the controller's /metrics")
    assert 'metallb_allocator_services_allocated_total{pool="first-pool"} 1' in controller
    assert 'metallb_allocator_addresses_in_use_total{pool="first-pool"} 1' in controller
    for node in NODES:
        text = k8s.metrics(node)
        assert "metallb_k8s_client_config_loaded_bool 1" in text
        assert 'metallb_allocator_addresses_total{' not in text, node
        announced = f'metallb_speaker_announced{{ip="{SERVICE_IP}",node="{winner}",protocol="layer2",' \
                    f'service="{SERVICE_NS}/{SERVICE_NAME}"}} 1'
        assert (announced in text) is (node == winner), node


@pytest.mark.lab
def test_killing_the_winners_speaker_moves_the_ip_within_a_second(k8s: K8sLab) -> None:
    old = k8s.elected("n1")
    macs = {node: k8s.lab.mac(node) for node in NODES}
    survivor = next(n for n in NODES if n != old)
    k8s.lab.flush_neighbours(CLIENT)
    k8s.lab.run(CLIENT, "arping", "-c", "1", "-w", "1", "-i", "eth0", SERVICE_IP, check=False)
    k8s.lab.run(CLIENT, "ping", "-c", "1", "-W", "1", SERVICE_IP, check=False)
    assert k8s.lab.neighbour(CLIENT, SERVICE_IP)[0] == macs[old]
    killed_at = time.monotonic()
    k8s.kill(old)
    # The new owner's gratuitous ARP rewrites the client's neighbour entry.
    moved = wait_for(lambda: k8s.lab.neighbour(CLIENT, SERVICE_IP)[0] not in (None, macs[old]),
                     timeout=3, what="the client's neighbour entry to move", every=0.01)
    took = time.monotonic() - killed_at
    assert moved and took < 1.0, f"failover took {took:.3f}s"
    wait_for(lambda: k8s.winner(survivor) not in (None, old), timeout=5, what="the survivors' election")
    new = k8s.elected(survivor)
    assert k8s.lab.neighbour(CLIENT, SERVICE_IP)[0] == macs[new]
    assert k8s.answering_macs(SERVICE_IP) == {macs[new]}
    wait_for(lambda: any(f'node "{new}"' in e["message"] for e in k8s.node_events()), timeout=5,
             what=f"nodeAssigned from {new}")
    # The new announcer's status replaces the dead node's (which cannot delete its own).
    expected = [(new, new, f"{SERVICE_NS}/{SERVICE_NAME}", ["eth0"], f"speaker-{new}")]
    wait_for(lambda: k8s.l2_statuses() == expected, timeout=5, what=f"the ServiceL2Status to move to {new}")


@pytest.mark.lab
def test_speakers_keep_announcing_and_failing_over_while_the_api_server_is_down(k8s: K8sLab) -> None:
    alive = [n for n in NODES if k8s.procs[n].poll() is None]
    owner = k8s.elected(alive[0])
    assert owner in alive
    last = next(n for n in alive if n != owner)
    macs = {node: k8s.lab.mac(node) for node in NODES}
    # First a hung API server (SIGSTOP: connections open, nothing answers), the
    # worst outage: failure detection and failover must not depend on it, and
    # the new owner's nodeAssigned write must not hang its watcher.
    api = k8s.procs["api"]
    os.kill(api.pid, signal.SIGSTOP)
    try:
        k8s.kill(owner)
        wait_for(lambda: k8s.lab.neighbour(CLIENT, SERVICE_IP)[0] == macs[last], timeout=3,
                 what=f"{last} to take over without the API", every=0.01)
        assert k8s.answering_macs(SERVICE_IP) == {macs[last]}

        def watcher_restarts() -> int:
            workers = (k8s.status(last) or {}).get("workers", [])
            return sum(w["restarts"] for w in workers if w["name"] == "watcher")

        deadline = time.monotonic() + 4.0  # longer than the supervisor's hung deadline (3 s)
        while time.monotonic() < deadline:
            assert watcher_restarts() == 0, k8s.log(last)[-3000:]
            time.sleep(0.2)
    finally:
        # Then the API server dies for good (SIGKILL also ends a stopped process).
        k8s.kill("api")
    wait_for(lambda: "watch.failed" in k8s.log(last), timeout=15, what=f"{last}'s watcher to notice the outage")
    k8s.lab.flush_neighbours(CLIENT)
    assert k8s.answering_macs(SERVICE_IP) == {macs[last]}
    k8s.lab.run(CLIENT, "ping", "-c", "1", "-W", "1", SERVICE_IP, check=False)
    assert k8s.lab.neighbour(CLIENT, SERVICE_IP)[0] == macs[last]
    assert k8s.procs[last].poll() is None
