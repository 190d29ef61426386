"""`metalloid controller` as a real process (supervisor + k8s worker) against the fake API server."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import events_for, ingress, pool, service
from tests.runtime_helpers import free_port, wait_for

METALLOID = str(Path(sys.executable).with_name("metalloid"))


def test_controller_process_assigns_and_exports_metallb_metrics() -> None:
    port = free_port()
    with FakeApiServer(bookmark_interval=1.0) as api:
        api.create(pool("first-pool", "10.0.10.10-10.0.10.99"))
        api.create(service("web"))
        proc = subprocess.Popen(
            [
                METALLOID,
                "controller",
                "--api-server",
                api.url,
                "--metrics-port",
                str(port),
                "--metrics-host",
                "127.0.0.1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert wait_for(lambda: ingress(api, "web"), timeout=30, what="the controller to write status") == [
                "10.0.10.10"
            ]
            wait_for(lambda: events_for(api, "web"), what="IPAllocated")

            def metrics() -> str:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()

            in_use = 'metallb_allocator_addresses_in_use_total{pool="first-pool"} 1'
            wait_for(lambda: in_use in metrics(), timeout=15, what="pool metrics from the allocator worker")
            assert 'metallb_allocator_services_allocated_total{pool="first-pool"} 1' in metrics()
            wait_for(lambda: "metallb_k8s_client_updates_total" in metrics(), what="k8s client counters")
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, output[-2000:]
        lease = api.get("Lease", "metallb-system", "metalloid-controller")["spec"]
        assert lease["holderIdentity"] is None  # released on SIGTERM: the next replica need not wait
