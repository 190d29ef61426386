"""Runs one Layer2Announcer in this process's network namespace, driven by JSON lines on stdin.

For the lab tests and bench/arp.py (`ip netns exec NS python -m tests.layer2_harness`).
The node is "n1", alone in its cluster so it wins every election. Commands:

    {"op": "update", "services": {"web": ["10.99.0.10"]}, "bind_local": false, "refresh": 0}
    {"op": "status"}   -> one JSON line: the announcer's status plus "metrics"
    {"op": "stop"}     -> stop(handover=True), print {"stopped": true}, exit 0
    {"op": "kernel_lease", "seconds": 60}  -> the in-kernel ARP answers' lease, renewed
                          that far ahead once (kernel_arp.LEASE_SECONDS otherwise);
                          the next tick shortens it again unless "hold" is true

Prints {"ready": true, ...} once the sockets are open.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from plugins.layer2.announcer import Layer2Announcer
from supervisor.api import AnnouncerView, Assignment, Config, IPAddressPool, L2Advertisement, Service, ServiceKey
from supervisor.config.model import AddressRange, Node, Settings

NODE = "n1"
POOL = IPAddressPool(
    name="lab",
    addresses=(
        AddressRange(first=ipaddress.ip_address("10.99.0.10"), last=ipaddress.ip_address("10.99.0.250"), text="v4"),
        AddressRange(first=ipaddress.ip_address("fd00:99::10"), last=ipaddress.ip_address("fd00:99::ff"), text="v6"),
    ),
)


class PrintingHost:
    node_name = NODE
    log = logging.getLogger("layer2.harness")

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    @staticmethod
    def _key(name: str, labels: Mapping[str, str]) -> str:
        return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"

    def counter(self, name: str, documentation: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        key = self._key(name, labels)
        self.metrics[key] = self.metrics.get(key, 0) + value

    def gauge(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self.metrics[self._key(name, labels)] = value

    def observe(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        pass

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        self.metrics.pop(self._key(name, labels), None)


def build_view(command: Mapping[str, Any]) -> AnnouncerView:
    services = command.get("services", {})
    config = Config(
        pools=(POOL,),
        l2_advertisements=(L2Advertisement(name="lab", interfaces=tuple(command.get("interfaces", ()))),),
        services=tuple(Service(namespace="default", name=name, ip_families=(4, 6)) for name in services),
        nodes=(Node(name=NODE),),
        settings=Settings(bind_local=bool(command.get("bind_local")), refresh_seconds=float(command.get("refresh", 0))),
    )
    assignments = tuple(
        Assignment(service=ServiceKey(namespace="default", name=name), ips=tuple(map(ipaddress.ip_address, ips)),
                   pool="lab")
        for name, ips in services.items()
    )
    return AnnouncerView(node_name=NODE, mode="standalone", config=config, assignments=assignments,
                         members=frozenset({NODE}))  # fmt: skip


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    host = PrintingHost()
    announcer = Layer2Announcer(host)
    announcer.start()
    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            if line.strip():
                commands.put(json.loads(line))
        commands.put(None)

    threading.Thread(target=read, daemon=True).start()
    print(json.dumps({"ready": True, **announcer.status()}), flush=True)
    hold_lease = False
    while True:
        try:
            command = commands.get(timeout=0.05)
        except queue.Empty:
            if not hold_lease:
                announcer.tick(time.monotonic())
            continue
        if command.get("op") == "kernel_lease":
            # Test-only: a long lease, so what ends the kernel's answers after
            # a SIGKILL can only be the link dying with the process.
            kernel = announcer._responder._kernel
            assert kernel is not None, "no in-kernel ARP in this harness"
            kernel.renew(seconds=float(command["seconds"]))
            hold_lease = bool(command.get("hold"))
            print(json.dumps({"lease": command["seconds"]}), flush=True)
            continue
        if command is None or command["op"] == "stop":
            announcer.stop(handover=True)
            print(json.dumps({"stopped": True}), flush=True)
            return 0
        if command["op"] == "update":
            announcer.update(build_view(command))
            announcer.tick(time.monotonic())
        announcer.tick(time.monotonic())
        print(json.dumps({**announcer.status(), "metrics": host.metrics}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
