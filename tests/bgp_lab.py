"""The BGP lab the BGP lab tests and bench/bgp.py share: metalloid + FRR nodes behind an FRR router.

    far (10.0.20.2) --veth-- router (10.0.20.1 | 10.0.10.254, FRR: bgpd with maximum-paths, bfdd)
                                 |  bridge 10.0.10.0/24
                   n1 n2 n3 (10.0.10.1-3: `metalloid run` with the bgp plugin, which runs FRR)
                   client (10.0.10.100: fetches /status and /metrics)

The Service IP (192.0.2.10) is in no subnet of the lab: the far client reaches
it only through the routes the nodes advertise, spread over them by the
router's ECMP (layer 4 hashing, so different connections take different
nodes). Each node binds the IP on `lo` (Settings.bindLocal) and runs the echo
app, which answers with the node's name.

Everything is torn down by PID and by namespace name: the lab's processes
(`Lab.destroy`), every FRR daemon (the router's and the nodes', from their pid
files), the far namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from plugins.bgp.frr import FRR, FRRSettings
from supervisor.lab.netns import Lab, LabError, require_root
from tests.lab_nodes import CLIENT, LabNodes

NODES = ("n1", "n2", "n3")
ROUTER = "router"
VIP = "192.0.2.10"
APP_PORT = 8080
ROUTER_ASN = 64501
NODE_ASN = 64500
FAR_ROUTER_IP = "10.0.20.1"
FAR_IP = "10.0.20.2"

CONFIG = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: bgp-pool
spec:
  addresses: [192.0.2.0/24, 198.18.0.0/20]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: bgp-adv
spec:
  ipAddressPools: [bgp-pool]
  communities: ["65535:65282", "large:64500:1:2"]
{service_selectors}---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: router
spec:
  myASN: {node_asn}
  peerASN: {router_asn}
  peerAddress: {router_ip}
  holdTime: {hold}s
  keepaliveTime: {keepalive}s
  connectTime: 1s
{bfd_line}---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  name: fast
spec:
  receiveInterval: 100
  transmitInterval: 100
  detectMultiplier: 3
---
apiVersion: metalloid.io/v1alpha1
kind: Settings
metadata:
  name: lab
spec:
  bindLocal: {bind_local}
---
apiVersion: metalloid.io/v1alpha1
kind: AnnouncerConfig
metadata:
  name: bgp
spec:
  hangTimeoutSeconds: 30
  settings:
    run_dir: {workdir}/frr-{{node}}
    poll_seconds: 0.5
    incremental_apply: {incremental}
{services}{nodes}"""

SERVICE = """---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
  labels: {{app: {name}}}
spec:
  type: LoadBalancer
  loadBalancerIP: {ip}
  ports:
    - port: 8080
      protocol: TCP
"""

NODE = """---
apiVersion: v1
kind: Node
metadata:
  name: {name}
status:
  addresses:
    - type: InternalIP
      address: {ip}
"""

ROUTER_CONFIG = """\
frr defaults traditional
hostname router
log timestamp precision 3
service integrated-vtysh-config
debug bfd peer
!
router bgp {router_asn}
 bgp router-id {router_ip}
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
{neighbors} !
 address-family ipv4 unicast
  maximum-paths 16
 exit-address-family
exit
!
bfd
 profile fast
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 exit
 !
exit
!
"""


def service_ips(count: int) -> list[str]:
    """`count` Service IPs: 192.0.2.10 first, then from 198.18.0.0/20 (room for 4,000)."""
    extra = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(max(count - 1, 0))]
    return [VIP, *extra][:count]


class BGPLab(LabNodes):
    """The lab above; `bfd` selects the BFDProfile on both sides, `services` how many Services."""

    def __init__(self, *, bfd: bool = True, services: int = 1, hold: int = 9, keepalive: int = 3,
                 prefix: str | None = None, incremental: bool = True, bind_local: bool = True) -> None:
        problem = require_root()
        if problem:
            raise LabError(problem)
        self.bfd = bfd
        self.incremental = incremental
        self.bind_local = bind_local
        self.hold, self.keepalive = hold, keepalive
        self.prefix = prefix or f"mbg{os.getpid() % 10000}"
        workdir = Path(tempfile.mkdtemp(prefix="metalloid-bgp-lab-"))
        # The FRR daemons run as the frr user and live in run dirs under the workdir.
        workdir.chmod(0o755)
        lab = Lab(prefix=self.prefix, hosts=[*NODES, ROUTER, CLIENT], host_index={ROUTER: 254, CLIENT: 100})
        super().__init__(lab, workdir, NODES)
        self.far_ns = f"{self.prefix}-far"
        self.config = workdir / "bgp.yaml"
        self.services = services
        self.router = FRR(FRRSettings(run_dir=workdir / "frr-router", manage_daemons=True),
                          netns=f"{self.prefix}-{ROUTER}")
        self.node_frr = {n: FRR(FRRSettings(run_dir=workdir / f"frr-{n}", manage_daemons=True)) for n in NODES}
        self.apps: dict[str, subprocess.Popen[bytes]] = {}

    # -- building ----------------------------------------------------------------

    def create(self) -> BGPLab:
        self.lab.create()
        far, router_ns = self.far_ns, self.lab.host(ROUTER).netns
        _sh("ip", "netns", "add", far)
        _sh("ip", "-n", far, "link", "set", "lo", "up")
        _sh("ip", "link", "add", "far0", "netns", router_ns, "type", "veth", "peer", "name", "eth0", "netns", far)
        _sh("ip", "-n", router_ns, "addr", "add", f"{FAR_ROUTER_IP}/24", "dev", "far0")
        _sh("ip", "-n", router_ns, "link", "set", "far0", "up")
        _sh("ip", "-n", far, "addr", "add", f"{FAR_IP}/24", "dev", "eth0")
        _sh("ip", "-n", far, "link", "set", "eth0", "up")
        _sh("ip", "-n", far, "route", "add", "default", "via", FAR_ROUTER_IP)
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1"):
            self.lab.run(ROUTER, "sysctl", "-qw", key)
        router_ip = self.lab.host(ROUTER).ip
        for node in NODES:
            self.lab.run(node, "ip", "route", "add", "10.0.20.0/24", "via", router_ip)
        self.router.start_daemons()
        neighbors = "".join(
            f" neighbor {self.lab.host(n).ip} remote-as {NODE_ASN}\n"
            f" neighbor {self.lab.host(n).ip} timers {self.keepalive} {self.hold}\n"
            f" neighbor {self.lab.host(n).ip} timers connect 1\n"
            + (f" neighbor {self.lab.host(n).ip} bfd\n neighbor {self.lab.host(n).ip} bfd profile fast\n"
               if self.bfd else "")
            for n in NODES
        )
        self.router.apply(ROUTER_CONFIG.format(router_asn=ROUTER_ASN, router_ip=router_ip, neighbors=neighbors))
        self.write_config()
        for node in NODES:
            self.apps[node] = self.lab.spawn(node, sys.executable, "-m", "supervisor.lab.echo", "--name", node,
                                             "--port", str(APP_PORT))
            self.start(node)
        return self

    def config_text(self, services: int | None = None, selected: str | None = None) -> str:
        """`selected`: the advertisement's serviceSelectors match only the Service of that name."""
        count = self.services if services is None else services
        return CONFIG.format(
            service_selectors=f"  serviceSelectors: [{{matchLabels: {{app: {selected}}}}}]\n" if selected else "",
            node_asn=NODE_ASN, router_asn=ROUTER_ASN, router_ip=self.lab.host(ROUTER).ip,
            hold=self.hold, keepalive=self.keepalive,
            bfd_line="  bfdProfile: fast\n" if self.bfd else "", workdir=self.workdir,
            incremental="true" if self.incremental else "false",
            bind_local="true" if self.bind_local else "false",
            services="".join(SERVICE.format(name=f"svc-{i}", ip=ip) for i, ip in enumerate(service_ips(count))),
            nodes="".join(NODE.format(name=n, ip=self.lab.host(n).ip) for n in NODES),
        )

    def write_config(self, services: int | None = None, selected: str | None = None) -> None:
        from tests.lab_nodes import write_atomically

        write_atomically(self.config, self.config_text(services, selected))

    def start(self, node: str) -> None:
        self.start_node(node, self.config, "bgp")

    def destroy(self) -> None:
        try:
            self.lab.destroy()
        finally:
            for frr in (*self.node_frr.values(), self.router):
                frr.stop_daemons()
            subprocess.run(["ip", "netns", "del", self.far_ns], capture_output=True, check=False)
            shutil.rmtree(self.workdir, ignore_errors=True)  # daemons stopped above; nothing writes there now

    # -- observing -------------------------------------------------------------------

    def paths(self, prefix: str = VIP) -> set[str]:
        """The nodes the router's kernel forwards `prefix` to (its ECMP next hops)."""
        out = self.lab.run(ROUTER, "ip", "route", "show", prefix, check=False).stdout
        by_ip = {self.lab.host(n).ip: n for n in NODES}
        return {by_ip.get(ip, ip) for ip in re.findall(r"via (\S+)", out)}

    def router_show(self, command: str) -> Any:
        return self.router.show(command)

    def route_count(self) -> int:
        """How many BGP routes the router's kernel has installed."""
        out = self.lab.run(ROUTER, "ip", "-4", "route", "show", "proto", "bgp", check=False).stdout
        return sum(1 for line in out.splitlines() if line and not line.startswith("\t") and "nexthop" not in line)

    def served_by(self, connections: int = 30, ip: str = VIP) -> list[str | None]:
        """Who answered each of `connections` fresh TCP connections from the far client."""
        script = (
            "import json,socket,sys\n"
            "out=[]\n"
            "for _ in range(int(sys.argv[2])):\n"
            "    try:\n"
            "        with socket.create_connection((sys.argv[1], 8080), timeout=1) as s:\n"
            "            out.append(s.recv(64).decode().strip() or None)\n"
            "    except OSError:\n"
            "        out.append(None)\n"
            "print(json.dumps(out))\n"
        )
        done = subprocess.run(["ip", "netns", "exec", self.far_ns, sys.executable, "-c", script, ip,
                               str(connections)], capture_output=True, text=True, timeout=60, check=False)
        try:
            return list(json.loads(done.stdout))
        except ValueError:
            return [None] * connections

    def probe(self, seconds: float) -> subprocess.Popen[str]:
        """The lab probe (supervisor.lab.probe) from the far client against the VIP, every 10 ms."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.far_ns, sys.executable, "-m", "supervisor.lab.probe",
             "--target", f"{VIP}:{APP_PORT}", "--interval", "0.01", "--timeout", "0.05", "--duration", str(seconds)],
            stdout=subprocess.PIPE, text=True)

    def wait(self, what: str, check: Any, timeout: float) -> float:
        """Poll `check()` every 10 ms until true; the monotonic time it became true. Raises on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return time.monotonic()
            time.sleep(0.01)
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}\n{self.logs()}")


def _sh(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
