"""A two-namespace lab for layer 2 (client ns <-> node ns over a veth pair, both ends `eth0`).

Shared by tests/test_layer2_lab.py and bench/arp.py. The node runs
`tests.layer2_harness` (one Layer2Announcer) under `ip netns exec`. Addresses:
node 10.99.0.2 / fd00:99::2, client 10.99.0.1 / fd00:99::1; announced IPs come
from 10.99.0.10-250 and fd00:99::10-ff.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODE_V4, CLIENT_V4 = "10.99.0.2", "10.99.0.1"
NODE_V6, CLIENT_V6 = "fd00:99::2", "fd00:99::1"


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def running(tag: str, env: dict[str, str] | None = None) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """A created lab with the harness started (`env` for it), and the harness's ready line; destroyed after."""
    lab = Lab(tag)
    try:
        lab.create()
        yield lab, lab.start_harness(env)
    finally:
        lab.destroy()


class Lab:
    def __init__(self, tag: str = "") -> None:
        suffix = f"{tag}{os.getpid()}"[-9:]
        self.node = f"mltn{suffix}"
        self.client = f"mltc{suffix}"
        self.harness: subprocess.Popen[str] | None = None
        self.log_path = Path(f"/tmp/{self.node}-harness.log")
        self.services: dict[str, list[str]] = {}

    # -- namespaces ---------------------------------------------------------

    def create(self) -> None:
        self.destroy()
        for ns in (self.node, self.client):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", self.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", self.client)
        for ns, v4, v6 in ((self.node, NODE_V4, NODE_V6), (self.client, CLIENT_V4, CLIENT_V6)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.wait_carrier()

    def destroy(self) -> None:
        self.stop_harness()
        for ns in (self.node, self.client):
            sh("ip", "netns", "del", ns, check=False)

    def wait_carrier(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = sh("ip", "-n", self.client, "link", "show", "eth0").stdout
            if "LOWER_UP" in out and "NO-CARRIER" not in out:
                return
            time.sleep(0.02)
        raise TimeoutError(f"{self.client} eth0 has no carrier after {timeout} s")

    def node_mac(self) -> str:
        out = sh("ip", "-n", self.node, "link", "show", "eth0").stdout
        found = re.search(r"link/ether ([0-9a-f:]{17})", out)
        assert found, out
        return found.group(1)

    def in_client(self, *args: str, check: bool = False, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.client, *args, check=check, timeout=timeout)

    def client_python(self, code: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.in_client(sys.executable, "-c", code, *argv, check=True, timeout=timeout)

    def arping(self, ip: str) -> tuple[int, str]:
        """One ARP request for `ip` from the client (iputils arping, 1 s): its exit code and output."""
        done = self.in_client("arping", "-c", "1", "-w", "1", "-I", "eth0", ip)
        return done.returncode, done.stdout

    def neighbour(self, ip: str) -> str | None:
        """The client kernel's MAC for `ip`, or None."""
        out = sh("ip", "-n", self.client, "neigh", "show", ip, "dev", "eth0").stdout
        found = re.search(r"lladdr ([0-9a-f:]{17})", out)
        return found.group(1) if found else None

    def wait_neighbour(self, ip: str, mac: str, timeout: float) -> float:
        """Seconds until the client's entry for `ip` is `mac`; raises after `timeout`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.neighbour(ip) == mac:
                return time.monotonic() - start
            time.sleep(0.01)
        raise TimeoutError(f"{ip} is at {self.neighbour(ip)} in {self.client}, not {mac}, after {timeout} s")

    # -- the announcer ------------------------------------------------------

    def start_harness(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        log = self.log_path.open("w")
        self.harness = subprocess.Popen(
            ["ip", "netns", "exec", self.node, sys.executable, "-m", "tests.layer2_harness"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.harness is not None and self.harness.stdout is not None
        line = self.harness.stdout.readline()
        if not line:
            raise RuntimeError(f"the harness exited: {self.log_path.read_text()[-2000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    def command(self, **command: Any) -> dict[str, Any]:
        assert self.harness is not None and self.harness.stdin is not None
        self.harness.stdin.write(json.dumps(command) + "\n")
        self.harness.stdin.flush()
        return self._read()

    def announce(self, service: str, *ips: str, **extra: Any) -> dict[str, Any]:
        if ips:
            self.services[service] = list(ips)
        else:
            self.services.pop(service, None)
        return self.command(op="update", services=self.services, **extra)

    def status(self) -> dict[str, Any]:
        return self.command(op="status")

    def stop_harness(self) -> None:
        if self.harness is None:
            return
        try:
            self.command(op="stop")
            self.harness.wait(timeout=5)
        except Exception:
            self.harness.kill()
            self.harness.wait(timeout=5)
        self.harness = None
