"""Helpers the Kubernetes-mode tests share: the runbook's manifests, polling, controllers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.controller import ControllerLoop, ControllerOptions
from supervisor.kubernetes.leaderelection import LeaseTimings
from supervisor.kubernetes.watcher import WatchOptions
from tests.fakeapi.server import FakeApiServer
from tests.runbook import RUNBOOK_L2 as RUNBOOK_L2  # re-exported for the Kubernetes tests
from tests.runbook import RUNBOOK_POOL as RUNBOOK_POOL

FAST_LEASE = LeaseTimings(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)


def service(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], **spec},
    }


def pool(name: str, *addresses: str) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": list(addresses)},
    }


def ingress(api: FakeApiServer, name: str, namespace: str = "default") -> list[str]:
    obj = api.get("Service", namespace, name)
    return [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def events_for(api: FakeApiServer, name: str, namespace: str = "default") -> list[dict[str, Any]]:
    return [e for e in api.list("Event", namespace) if e["involvedObject"]["name"] == name]


def controller_options(identity: str = "controller-a", **kw: Any) -> ControllerOptions:
    watch = WatchOptions(debounce_seconds=0.02, watch_timeout_seconds=5, backoff_max_seconds=0.3)
    return ControllerOptions(identity=identity, timings=FAST_LEASE, watch=watch, **kw)


@contextmanager
def running_controller(api: FakeApiServer, identity: str = "controller-a", **kw: Any) -> Iterator[ControllerLoop]:
    client = RawClient.connect(host=api.url, user_agent=f"metalloid/{identity}")
    loop = ControllerLoop(client, controller_options(identity, **kw)).start()
    try:
        yield loop
    finally:
        loop.stop()
        client.close()


@contextmanager
def running_speaker_worker(api: FakeApiServer, node: str = "n1",
                           namespace: str = "metallb-system") -> Iterator[queue.Queue[Any]]:  # fmt: skip
    """The speaker's watcher worker (`supervisor.kubernetes.worker.run`) in a thread; yields its inbox."""
    from supervisor.kubernetes.worker import run
    from supervisor.messages import Control
    from supervisor.supervising.settings import SpeakerSettings

    inbox: queue.Queue[Any] = queue.Queue()
    outbox: queue.Queue[Any] = queue.Queue()
    settings = SpeakerSettings(name="watcher", node_name=node, api_host=api.url, namespace=namespace)
    worker = threading.Thread(target=run, args=(settings, inbox, outbox), daemon=True)
    worker.start()
    try:
        yield inbox
    finally:
        inbox.put(Control.STOP)
        worker.join(10)
    assert not worker.is_alive()
