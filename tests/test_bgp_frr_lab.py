"""FRR outside metalloid, as deploy/with-bgp runs it, and managed FRR under the systemd drop-in's capabilities.

No cluster here, so the sidecar is validated piece by piece with the real
programs. In the node's namespace (n1) FRR's daemons are started by the test,
not by metalloid: the stand-in for the `frr` container (its own process tree,
its vty sockets in a shared directory that is world-writable like the pod's
emptyDir). A real `metalloid speaker` runs beside it with the DaemonSet's
arguments, against the fake API server (in the client's namespace) seeded
with a BGPPeer, a BGPAdvertisement, a Service holding its IP, and the
component's AnnouncerConfig (`manage_daemons: false`, `run_dir` pointed at the
shared directory). It runs as the container does: uid 0 with only NET_RAW and
the frrvty group, no CAP_DAC_OVERRIDE, so it reaches FRR only through the
sockets' group, as in the pod. An upstream router namespace runs its own FRR.

Checked: the router learns the route from the unmanaged FRR; the speaker's
/status and ServiceBGPStatus say so; FRR restarted underneath the speaker (a
container restart: empty configuration) gets the whole configuration again.
Separately: zebra, bgpd and bfdd start and answer under exactly the
capability bounding set of deploy/systemd/metalloid.service.d/bgp.conf.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from plugins.bgp.frr import FRR, FRRSettings
from supervisor.lab.netns import Lab, require_root
from tests.bgp_lab import NODE_ASN, ROUTER_ASN, ROUTER_CONFIG, VIP
from tests.deploy_support import find, kustomize
from tests.test_k8s_lab import API_PORT, KUBECONFIG, METRICS_PORT, K8sLab, wait_for  # the speakers' lab's

NODE, ROUTER, CLIENT = "n1", "router", "client"
NS = "metallb-system"
BGPSTATUS_PATH = f"/apis/metallb.io/v1beta1/namespaces/{NS}/servicebgpstatuses"

def seed(lab: Lab, run_dir: Path) -> list[dict[str, Any]]:
    """A cluster with deploy/with-bgp's AnnouncerConfig and one Service the controller already gave its IP."""
    announcer = copy.deepcopy(find(kustomize("with-bgp"), "AnnouncerConfig", "bgp"))  # kustomize() is cached
    assert announcer["spec"]["settings"] == {"manage_daemons": False, "run_dir": "/var/run/frr"}
    announcer["spec"]["settings"]["run_dir"] = str(run_dir)  # the pod's /var/run/frr, here
    announcer["spec"]["settings"]["poll_seconds"] = 0.5
    node_ip, router_ip = lab.host(NODE).ip, lab.host(ROUTER).ip
    meta = {"namespace": NS}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
        announcer,
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "bgp-pool", **meta},
         "spec": {"addresses": ["192.0.2.0/24"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "bgp-adv", **meta},
         "spec": {"ipAddressPools": ["bgp-pool"]}},
        {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "router", **meta},
         "spec": {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": router_ip, "holdTime": "9s",
                  "keepaliveTime": "3s", "connectTime": "1s"}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
         "status": {"addresses": [{"type": "InternalIP", "address": node_ip}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"speaker-{NODE}", **meta,
                                                         "labels": {"app": "metalloid", "component": "speaker"}},
         "spec": {"nodeName": NODE, "hostNetwork": True},
         "status": {"phase": "Running", "hostIP": node_ip, "podIP": node_ip}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "web", "namespace": "default",
                      "annotations": {"metallb.io/ip-allocated-from-pool": "bgp-pool"}},
         "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
         "status": {"loadBalancer": {"ingress": [{"ip": VIP}]}}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-abcde", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.244.0.5"], "nodeName": NODE,
                        "conditions": {"ready": True, "serving": True, "terminating": False}}]},
    ]  # fmt: skip


class Sidecar:
    """The lab: router, the node's FRR (ours, not metalloid's), the fake API and the speaker."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lab = Lab(prefix=f"mbs{os.getpid() % 10000}", hosts=[NODE, ROUTER, CLIENT],
                       host_index={ROUTER: 254, CLIENT: 100})  # fmt: skip
        self.shared = workdir / "frr-sockets"
        self.router = FRR(FRRSettings(run_dir=workdir / "frr-router", manage_daemons=True),
                          netns=f"{self.lab.prefix}-{ROUTER}")  # fmt: skip
        self.frr = FRR(FRRSettings(run_dir=self.shared, manage_daemons=True), netns=f"{self.lab.prefix}-{NODE}")
        # Processes, logs and GETs as in the speakers' lab (spawn, log, get_json, status, api, close).
        self.k8s = K8sLab(lab=self.lab, workdir=workdir)

    def create(self) -> Sidecar:
        self.lab.create()
        self.router.start_daemons()
        node_ip = self.lab.host(NODE).ip
        neighbors = (f" neighbor {node_ip} remote-as {NODE_ASN}\n neighbor {node_ip} timers 3 9\n"
                     f" neighbor {node_ip} timers connect 1\n")  # fmt: skip
        self.router.apply(ROUTER_CONFIG.format(router_asn=ROUTER_ASN, router_ip=self.lab.host(ROUTER).ip,
                                               neighbors=neighbors))  # fmt: skip
        self.shared.mkdir(mode=0o777)
        self.shared.chmod(0o777)  # an emptyDir: both containers write there
        self.start_frr()
        (self.workdir / "seed.yaml").write_text(yaml.safe_dump_all(seed(self.lab, self.shared)))
        (self.workdir / "kubeconfig").write_text(KUBECONFIG)
        key = self.workdir / "secretkey"
        key.write_text("ab" * 32)
        key.chmod(0o600)
        py = sys.executable
        self.spawn("api", CLIENT, py, "-m", "tests.fakeapi", "--host", "0.0.0.0", "--port", str(API_PORT),
                   "--seed", str(self.workdir / "seed.yaml"), "--bookmark-interval", "0.5")
        wait_for(lambda: "listening" in self.log("api"), timeout=15, what="the fake API server")
        env = {**os.environ, "METALLOID_NAMESPACE": NS, "NODE_NAME": NODE, "POD_NAME": f"speaker-{NODE}"}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        # The speaker container: uid 0 without CAP_DAC_OVERRIDE (only NET_RAW), frrvty as a
        # supplementary group (the pod's supplementalGroups), so FRR's sockets let it in by group only.
        frrvty = subprocess.run(["getent", "group", "frrvty"], capture_output=True, text=True, check=True)
        gid = frrvty.stdout.split(":")[2]
        self.spawn(NODE, NODE, "setpriv", "--bounding-set=-all,+net_raw", "--inh-caps=-all", "--ambient-caps=-all",
                   f"--groups={gid}", "--no-new-privs", "--",
                   py, "-m", "supervisor.cli", "speaker", "--node", NODE, "--namespace", NS,
                   "--membership-key-file", str(key), "--metrics-port", str(METRICS_PORT),
                   "--kubeconfig", str(self.workdir / "kubeconfig"), "--log-format", "json",
                   "--state-dir", str(self.workdir / "state"), env=env)  # fmt: skip
        return self

    def start_frr(self) -> None:
        """Start (or restart) the node's FRR as the frr container does: empty, with nothing of metalloid's."""
        (self.shared / "frr.conf").unlink(missing_ok=True)
        self.frr.start_daemons()
        for entry in self.shared.iterdir():  # the daemons' sockets: group frrvty, as in the container
            if entry.suffix == ".vty":
                assert entry.stat().st_mode & 0o060 == 0o060, (entry, oct(entry.stat().st_mode))

    def spawn(self, name: str, host: str, *argv: str, env: dict[str, str] | None = None) -> None:
        self.k8s.spawn(name, host, *argv, env=env)

    def log(self, name: str) -> str:
        return self.k8s.log(name)

    def status(self) -> dict[str, Any]:
        return self.k8s.status(NODE) or {}

    def bgp(self) -> dict[str, Any]:
        return dict((self.status().get("plugins") or {}).get("bgp") or {})

    def routed_via_node(self) -> bool:
        out = self.lab.run(ROUTER, "ip", "route", "show", VIP, check=False).stdout
        return f"via {self.lab.host(NODE).ip}" in out

    def bgp_statuses(self) -> list[dict[str, Any]]:
        return list(self.k8s.api(BGPSTATUS_PATH).get("items") or [])

    def destroy(self) -> None:
        try:
            self.k8s.close()  # the speaker and the API server, by their process groups; the namespaces
        finally:
            self.frr.stop_daemons()
            self.router.stop_daemons()


@pytest.fixture(scope="module")
def sidecar() -> Iterator[Sidecar]:
    why = require_root()
    if why:
        pytest.fail(why)  # CI runs as root: a missing privilege is a failure, not a skip
    workdir = Path(tempfile.mkdtemp(prefix="metalloid-bgp-sidecar-"))
    workdir.chmod(0o755)  # the frr user reaches its run directories below
    lab = Sidecar(workdir)
    try:
        yield lab.create()
    finally:
        proc = lab.k8s.procs.get(NODE)
        if proc is not None and proc.poll() is not None:
            print(f"--- the speaker exited {proc.returncode}:\n{lab.log(NODE)[-3000:]}")
        lab.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.lab
def test_the_speaker_drives_the_frr_it_does_not_manage_and_the_router_learns_the_route(sidecar: Sidecar) -> None:
    wait_for(sidecar.routed_via_node, timeout=30, what="the router's route to the Service IP via n1")
    bgp = wait_for(lambda: (b := sidecar.bgp()) and b["frr"]["in_sync"] and b, timeout=10, what="FRR in sync")
    assert bgp["frr"]["managed"] is False and bgp["frr"]["pids"] == {}
    assert bgp["frr"]["run_dir"] == str(sidecar.shared)
    assert [(s["peer"], s["state"]) for s in bgp["sessions"]] == [("router", "Established")]
    # The configuration is the speaker's, in the shared directory; the daemons are not its children.
    assert f"network {VIP}/32" in (sidecar.shared / "frr.conf").read_text()
    assert sidecar.frr.pids().keys() == {"zebra", "bgpd", "bfdd"}
    ready = sidecar.lab.run(NODE, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{METRICS_PORT}/readyz", check=False).stdout  # fmt: skip
    assert ready == "200"


@pytest.mark.lab
def test_the_speaker_writes_service_bgp_status_naming_the_peer(sidecar: Sidecar) -> None:
    items = wait_for(sidecar.bgp_statuses, timeout=15, what="a ServiceBGPStatus in the API")
    [obj] = items
    assert obj["metadata"]["name"].startswith("bgp-")
    assert obj["metadata"]["labels"] == {"metallb.io/node": NODE, "metallb.io/service-name": "web",
                                         "metallb.io/service-namespace": "default"}  # fmt: skip
    assert [o["name"] for o in obj["metadata"]["ownerReferences"]] == [f"speaker-{NODE}"]
    assert obj["status"] == {"node": NODE, "serviceName": "web", "serviceNamespace": "default", "peers": ["router"]}


@pytest.mark.lab
def test_frr_restarted_underneath_the_speaker_gets_the_whole_configuration_again(sidecar: Sidecar) -> None:
    wait_for(sidecar.routed_via_node, timeout=30, what="the route before the restart")
    before = sidecar.bgp()["frr"]["reloads"]
    old = sidecar.frr.pids()
    sidecar.frr.stop_daemons()  # the frr container dies ...
    wait_for(lambda: not sidecar.routed_via_node(), timeout=15, what="the router dropping the route")
    sidecar.start_frr()  # ... and the kubelet starts it again, empty
    assert sidecar.frr.pids().keys() == old.keys() and set(sidecar.frr.pids().values()).isdisjoint(old.values())
    wait_for(sidecar.routed_via_node, timeout=30, what="the route back after FRR's restart")
    bgp = sidecar.bgp()
    assert bgp["frr"]["reloads"] > before  # the speaker applied it again ...
    assert bgp["frr"]["restarts"] == 0  # ... without restarting anything itself: not its daemons
    assert sidecar.k8s.procs[NODE].poll() is None, sidecar.log(NODE)[-3000:]


@pytest.mark.lab
def test_managed_frr_runs_with_only_the_drop_ins_capabilities(tmp_path_factory: pytest.TempPathFactory) -> None:
    """zebra, bgpd and bfdd, started and stopped by the bgp plugin's FRR shell as metalloid.service with the
    bgp drop-in runs it: uid 0 holding only the drop-in's bounding set, no new privileges."""
    from tests.test_deploy_standalone import drop_in

    if require_root():
        pytest.fail(str(require_root()))
    caps = drop_in()["Service"]["CapabilityBoundingSet"].split()
    bounding = ",".join(["-all", *(f"+{c.removeprefix('CAP_').lower()}" for c in caps)])
    workdir = Path(tempfile.mkdtemp(prefix="metalloid-frr-caps-"))
    workdir.chmod(0o755)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from plugins.bgp.frr import FRR, FRRSettings, parse_neighbors\n"
        "frr = FRR(FRRSettings(run_dir=Path(sys.argv[1]), manage_daemons=True))\n"
        "try:\n"
        "    frr.start_daemons(timeout=10)\n"
        "    frr.apply('frr defaults traditional\\nrouter bgp 64500\\n bgp router-id 10.9.9.1\\n'\n"
        "              ' neighbor 10.9.9.2 remote-as 64501\\n!\\n')\n"
        "    print('neighbors', [n.address for n in parse_neighbors(frr.show('show bgp vrf all neighbors json'))])\n"
        "    print('daemons', sorted(frr.pids()))\n"
        "finally:\n"
        "    frr.stop_daemons()\n"
        "    print('left', sorted(frr.pids()))\n"
    )
    lab = Lab(prefix=f"mbc{os.getpid() % 10000}", hosts=[NODE])
    try:
        lab.create()
        out = lab.run(NODE, "setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--ambient-caps=-all",
                      "--no-new-privs", "--", sys.executable, "-c", script, str(workdir / "frr"),
                      check=False, timeout=60)  # fmt: skip
    finally:
        lab.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["neighbors ['10.9.9.2']", "daemons ['bfdd', 'bgpd', 'zebra']", "left []"]
