"""Kubernetes mode started on an invalid configuration: controller and speaker have no last good config yet.

Issue 11: a config-level error (here an IPAddressPool overlapping another,
which the CRD's rules cannot see) refuses the configuration as a whole, as
MetalLB does: with no last good configuration the controller allocates and
clears nothing and the speaker announces nothing,
`metallb_k8s_client_config_stale_bool` is 1 and `..._loaded_bool` 0 in both.
Once the pool is fixed, both load it and the Service is served with the IP it
already held. (test_k8s_lab.py covers the same rule on a reload, with a last
good configuration in force.)

Its own small lab (the API server and the controller in `client`, one speaker
in `n1`): the processes must start on the invalid configuration, which the
shared Kubernetes lab cannot do without restarting everything.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Iterator

import pytest
import yaml

from supervisor.lab.netns import Lab, require_root
from tests.runbook import RUNBOOK_L2, RUNBOOK_POOL
from tests.test_k8s_lab import (
    API_PORT,
    CLIENT,
    KUBECONFIG,
    METRICS_PORT,
    SERVICE_IP,
    SERVICE_NAME,
    SERVICE_NS,
    SERVICE_PATH,
    K8sLab,
    endpoint,
    wait_for,
)

NODE = "n1"
OVERLAPPING_PATH = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/overlapping"


def seed_objects() -> list[dict[str, object]]:
    """The runbook's cluster, its Service already holding an IP (MetalLB gave it), plus an overlapping pool."""
    overlapping = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                   "metadata": {"name": "overlapping", "namespace": "metallb-system"},
                   "spec": {"addresses": ["10.0.10.50-10.0.10.60"]}}  # fmt: skip
    return [
        *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ("metallb-system", SERVICE_NS)),
        yaml.safe_load(RUNBOOK_POOL), yaml.safe_load(RUNBOOK_L2), overlapping,
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
         "status": {"addresses": [{"type": "InternalIP", "address": "10.0.10.1"}]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": f"speaker-{NODE}", "namespace": "metallb-system",
                      "labels": {"app": "metalloid", "component": "speaker"}},
         "spec": {"nodeName": NODE, "hostNetwork": True},
         "status": {"phase": "Running", "hostIP": "10.0.10.1", "podIP": "10.0.10.1"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NS},
         "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
         "status": {"loadBalancer": {"ingress": [{"ip": SERVICE_IP}]}}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{SERVICE_NAME}-abcde", "namespace": SERVICE_NS,
                      "labels": {"kubernetes.io/service-name": SERVICE_NAME}},
         "addressType": "IPv4", "endpoints": [endpoint(ready=True)],
         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def started_invalid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sLab]:
    why = require_root()
    if why:
        pytest.fail(why)  # CI runs as root: a missing privilege is a failure, not a skip
    workdir = tmp_path_factory.mktemp("k8sinvalid")
    (workdir / "seed.yaml").write_text(yaml.safe_dump_all(seed_objects()))
    (workdir / "kubeconfig").write_text(KUBECONFIG)
    key = workdir / "secretkey"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    lab = Lab(prefix=f"mli{os.getpid() % 10000}q", hosts=[NODE, CLIENT], host_index={CLIENT: 100})
    cluster = K8sLab(lab=lab, workdir=workdir)
    try:
        lab.create()
        py = sys.executable
        cluster.spawn("api", CLIENT, py, "-m", "tests.fakeapi", "--host", "0.0.0.0", "--port", str(API_PORT),
                      "--seed", str(workdir / "seed.yaml"), "--bookmark-interval", "0.5")
        wait_for(lambda: "listening" in cluster.log("api"), timeout=15, what="the fake API server")
        kubeconfig = str(workdir / "kubeconfig")
        env = {**os.environ, "METALLOID_NAMESPACE": "metallb-system", "POD_NAME": "controller-lab"}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        cluster.spawn("controller", CLIENT, py, "-m", "supervisor.cli", "controller", "--kubeconfig", kubeconfig,
                      "--metrics-port", str(METRICS_PORT), env=env)
        cluster.spawn(NODE, NODE, py, "-m", "supervisor.cli", "speaker", "--node", NODE,
                      "--namespace", "metallb-system", "--membership-key-file", str(key),
                      "--metrics-port", str(METRICS_PORT), "--kubeconfig", kubeconfig,
                      "--state-dir", str(workdir / "state"), env={**env, "NODE_NAME": NODE, "POD_NAME": "speaker-n1"})
        yield cluster
    finally:
        cluster.close()


def gauge(cluster: K8sLab, host: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", cluster.metrics(host), re.M)
    return float(found.group(1)) if found else None


def held_ips(cluster: K8sLab) -> list[str]:
    svc = cluster.api(SERVICE_PATH)
    return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


@pytest.mark.lab
def test_controller_and_speaker_start_on_an_invalid_config_serve_nothing_then_load_the_fixed_one(
    started_invalid: K8sLab,
) -> None:
    c = started_invalid
    for host, process in ((CLIENT, "controller"), (NODE, NODE)):
        wait_for(lambda host=host: gauge(c, host, "metallb_k8s_client_config_stale_bool") == 1,  # type: ignore[misc]
                 timeout=30, what=f"the {process} to report its config stale")
        assert gauge(c, host, "metallb_k8s_client_config_loaded_bool") == 0, host
        status = c.get_json(f"http://127.0.0.1:{METRICS_PORT}/status", host=host)
        assert status is not None and not status["config"]["loaded"] and status["config"]["stale"], host
        assert any("overlapping" in e and "overlaps" in e for e in status["config"]["errors"]), status["config"]
        assert status["services"] == [], host
    # Nothing was cleared (the Service keeps the IP MetalLB gave it) and nobody answers for it.
    assert held_ips(c) == [SERVICE_IP]
    assert c.answering_macs(SERVICE_IP) == set()
    # The fix arrives: both load it, the Service is announced with the IP it held.
    c.lab.run(CLIENT, "curl", "-sf", "--max-time", "2", "-X", "DELETE",
              f"http://10.0.10.100:{API_PORT}{OVERLAPPING_PATH}", timeout=10)
    for host in (CLIENT, NODE):
        wait_for(lambda host=host: gauge(c, host, "metallb_k8s_client_config_loaded_bool") == 1,  # type: ignore[misc]
                 timeout=15, what=f"{host} to load the fixed config")
        assert gauge(c, host, "metallb_k8s_client_config_stale_bool") == 0, host
    assert wait_for(lambda: c.answering_macs(SERVICE_IP), timeout=15, what="an ARP answer") == {c.lab.mac(NODE)}
    assert held_ips(c) == [SERVICE_IP]
