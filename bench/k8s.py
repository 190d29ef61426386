"""Kubernetes mode against the fake API server: latency, cold start, requests per Service.

1. Service created → IP in status: Services are created one at a time (every
   `--interval` ms) while the controller runs; a separate watch records when
   each one's status.loadBalancer.ingress appears. p50/p99 over `--services`.
2. Cold start: `--cold` Services already exist without IPs; time from starting
   the controller to all of them holding an IP. Then a restart with all of them
   already assigned: time to the first full reconcile, and the writes it made
   (should be 0).
3. API requests per Service in (1): writes (PATCH/POST/PUT) and all requests
   beyond the watches, per created Service.

Everything runs in one process (the in-process ControllerLoop, the fake API
server in threads) on loopback, so the figures include the fake server's own
cost on the same cores.

    .venv/bin/python bench/k8s.py [--services 1000] [--cold 5000] [--interval 20]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.controller import ControllerLoop
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import controller_options, pool, service
from tests.runtime_helpers import wait_for


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def has_ingress(obj: dict[str, Any]) -> bool:
    return bool(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


def start(api: FakeApiServer) -> tuple[RawClient, ControllerLoop]:
    client = RawClient.connect(host=api.url, user_agent="metalloid/bench")
    return client, ControllerLoop(client, controller_options("bench")).start()


def latency(count: int, interval: float) -> None:
    with FakeApiServer(history=200_000, bookmark_interval=5.0) as api:
        api.create(pool("big", "10.0.0.0/16"))
        client, loop = start(api)
        wait_for(lambda: loop.core.elector.is_leader() and loop.allocations >= 1, timeout=10)
        created: dict[str, float] = {}
        assigned: dict[str, float] = {}
        stop = threading.Event()

        def observe() -> None:
            watcher = RawClient.connect(host=api.url, user_agent="bench-observer")
            for event in watcher.watch(
                "/api/v1/services", query={"resourceVersion": "0", "timeoutSeconds": 600}, timeout=700
            ):
                obj = event["object"]
                if (obj.get("status") or {}).get("loadBalancer", {}).get("ingress"):
                    assigned.setdefault(obj["metadata"]["name"], time.perf_counter())
                if stop.is_set() and len(assigned) >= count:
                    return

        observer = threading.Thread(target=observe, daemon=True)
        observer.start()
        base = len(api.requests)
        for i in range(count):
            name = f"svc{i:05d}"
            created[name] = time.perf_counter()
            api.create(service(name))
            time.sleep(interval / 1000)
        wait_for(lambda: len(assigned) >= count, timeout=120, what="all IPs")
        stop.set()
        delays = [(assigned[n] - created[n]) * 1000 for n in created]
        requests = [r for r in api.requests[base:] if "watch=" not in r.query and "bench-observer" not in r.agent]
        writes = [r for r in requests if r.method in ("POST", "PUT", "PATCH", "DELETE") and "/leases" not in r.path]
        lease = [r for r in requests if "/leases" in r.path]
        status_writes = [r for r in writes if r.path.endswith("/status") and "/services/" in r.path]
        print(f"## Service created -> IP in status ({count} Services, one every {interval} ms)")
        print(
            f"p50 {statistics.median(delays):.1f} ms   p99 {percentile(delays, 0.99):.1f} ms   "
            f"max {max(delays):.1f} ms   allocations run {loop.allocations}"
        )
        print(
            f"writes per Service: {len(writes) / count:.2f} (status {len(status_writes) / count:.2f}, "
            f"annotation+event+pool status the rest); other requests: {len(requests) - len(writes) - len(lease)}, "
            f"lease requests: {len(lease)}"
        )
        loop.stop()
        client.close()


def cold_start(count: int) -> None:
    with FakeApiServer(history=50_000, bookmark_interval=5.0) as api:
        api.create(pool("big", "10.0.0.0/16"))
        for i in range(count):
            api.create(service(f"svc{i:05d}"))

        def all_assigned() -> bool:
            time.sleep(0.1)  # polling must not steal the CPU it measures
            return api.count("Service", has_ingress) == count

        began = time.perf_counter()
        client, loop = start(api)
        wait_for(all_assigned, timeout=600, what="all Services assigned")
        took = time.perf_counter() - began
        loop.stop()
        client.close()
        print(f"## Cold start, {count} existing Services without IPs: all assigned in {took:.2f} s")
        base = len(api.writes())
        began = time.perf_counter()
        client, loop = start(api)
        wait_for(lambda: loop.core.applied >= 1, timeout=120)
        took = time.perf_counter() - began
        time.sleep(0.5)
        loop.stop()
        client.close()
        extra = [r for r in api.writes()[base:] if "/leases" not in r.path]
        print(
            f"## Restart with {count} Services already assigned: first reconcile after {took:.2f} s, "
            f"writes {len(extra)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--cold", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=20.0, help="ms between creations")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    latency(args.services, args.interval)
    cold_start(args.cold)


if __name__ == "__main__":
    main()
