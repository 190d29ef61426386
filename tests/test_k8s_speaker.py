"""The speaker's Kubernetes side: peers from speaker pods, assignments from status, nodeAssigned."""

from __future__ import annotations

import ipaddress
import queue
from typing import Any

import pytest

from supervisor.config.model import Config, IPAddressPool, Service
from supervisor.config.parsing import parse_objects
from supervisor.kubernetes.assignments import POOL_ANNOTATION, assignments_from_status, speaker_allocation
from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.peers import nodes_with_speaker_addresses, speaker_addresses
from supervisor.kubernetes.watcher import Emitted, KubeWatcher, WatchOptions
from supervisor.messages import ConfigLoaded
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import service
from tests.runtime_helpers import wait_for


def pod(
    name: str, node: str, ip: str | None, *, phase: str = "Running", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "metallb-system",
            "labels": labels if labels is not None else {"app": "metalloid", "component": "speaker"},
        },
        "spec": {"nodeName": node},
        "status": {"phase": phase, "hostIP": ip, "podIP": ip} if ip else {"phase": phase},
    }


def node(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([pod("s1", "n1", "192.0.2.1")], {"n1": "192.0.2.1"}),
        ([pod("s1", "n1", None)], {}),
        ([pod("s1", "n1", "192.0.2.1", phase="Pending")], {}),
        ([pod("s1", "n1", "192.0.2.1"), pod("s2", "n2", "192.0.2.2")], {"n1": "192.0.2.1", "n2": "192.0.2.2"}),
    ],
    ids=["running", "no-ip-yet", "pending", "two-nodes"],
)
def test_speaker_addresses(pods: list[dict[str, Any]], expected: dict[str, str]) -> None:
    assert speaker_addresses(pods) == expected


def test_nodes_take_the_speaker_pod_address_and_nodes_without_one_have_none() -> None:
    rewritten = nodes_with_speaker_addresses(
        [node("n1", "10.0.0.1"), node("n2", "10.0.0.2")], [pod("s", "n1", "192.0.2.1")]
    )
    config, _ = parse_objects(rewritten)
    assert {n.name: tuple(map(str, n.addresses)) for n in config.nodes} == {"n1": ("192.0.2.1",), "n2": ()}


def test_assignments_from_status_use_the_annotation_then_the_pool_holding_the_ip() -> None:
    pool = IPAddressPool(
        name="first-pool",
        addresses=parse_objects(
            [
                {
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "IPAddressPool",
                    "metadata": {"name": "first-pool"},
                    "spec": {"addresses": ["10.0.10.10-10.0.10.99"]},
                }
            ]
        )[0]
        .pools[0]
        .addresses,
    )
    ip = ipaddress.ip_address("10.0.10.10")
    config = Config(
        pools=(pool,),
        services=(
            Service(namespace="a", name="annotated", status_ips=(ip,), annotations=((POOL_ANNOTATION, "other"),)),
            Service(namespace="a", name="plain", status_ips=(ipaddress.ip_address("10.0.10.11"),)),
            Service(namespace="a", name="pending"),
            Service(namespace="a", name="cluster-ip", type="ClusterIP", status_ips=(ip,)),
        ),
    )
    found = {str(a.service): (tuple(map(str, a.ips)), a.pool) for a in assignments_from_status(config)}
    assert found == {"a/annotated": (("10.0.10.10",), "other"), "a/plain": (("10.0.10.11",), "first-pool")}


def test_speaker_watcher_reads_peers_from_pods_and_keeps_last_state_in_an_outage(runbook_api: FakeApiServer) -> None:
    runbook_api.create(node("n1", "10.0.0.1"))
    runbook_api.create(node("n2", "10.0.0.2"))
    created = runbook_api.create(pod("speaker-a", "n1", None))
    runbook_api.update_status("Pod", "metallb-system", created["metadata"]["name"],
                              {"phase": "Running", "hostIP": "192.0.2.1"})
    runbook_api.create(pod("unrelated", "n2", "192.0.2.9", labels={"app": "other"}))
    runbook_api.create(service("web"))
    runbook_api.update_status("Service", "default", "web", {"loadBalancer": {"ingress": [{"ip": "10.0.10.10"}]}})
    out: queue.Queue[Emitted] = queue.Queue()
    options = WatchOptions(speaker_pods=True, debounce_seconds=0.02, watch_timeout_seconds=5, backoff_max_seconds=0.2)
    watcher = KubeWatcher(RawClient.connect(host=runbook_api.url), options, out.put)
    watcher.start()
    try:
        loaded = out.get(timeout=5)
        assert isinstance(loaded, ConfigLoaded)
        assert {n.name: tuple(map(str, n.addresses)) for n in loaded.config.nodes} == {"n1": ("192.0.2.1",), "n2": ()}
        result = speaker_allocation(loaded.config)
        assert {str(k): tuple(map(str, a.ips)) for k, a in result.assignments.items()} == {
            "default/web": ("10.0.10.10",)
        }
        with runbook_api.outage("close"):
            wait_for(lambda: watcher.reconnects > 0)
            assert out.empty()  # nothing new: the supervisor keeps routing the last state
            assert watcher.last_good_generation == loaded.generation
        runbook_api.create(pod("speaker-b", "n2", None))
        runbook_api.update_status("Pod", "metallb-system", "speaker-b", {"phase": "Running", "hostIP": "192.0.2.2"})

        def n2_address() -> tuple[str, ...]:
            latest = out.get(timeout=5)
            assert isinstance(latest, ConfigLoaded)
            return {n.name: tuple(map(str, n.addresses)) for n in latest.config.nodes}["n2"]

        assert wait_for(n2_address) == ("192.0.2.2",)
    finally:
        watcher.stop()


def test_status_allocator_worker_answers_each_routed_config_from_status() -> None:
    from supervisor.kubernetes.status_allocator import run as run_status_allocator
    from supervisor.messages import AllocationDone, Control
    from supervisor.supervising.settings import WorkerSettings

    svc = Service(namespace="default", name="web", status_ips=(ipaddress.ip_address("10.0.10.10"),))
    other = Service(namespace="default", name="other", status_ips=(ipaddress.ip_address("10.0.10.11"),))
    inbox: queue.Queue[Any] = queue.Queue()
    outbox: queue.Queue[Any] = queue.Queue()
    inbox.put(ConfigLoaded(generation=7, config=Config(services=(svc,)), origin="kubernetes"))
    # What the watcher read and handed over is passed on as it is (not read again from the config).
    handed = speaker_allocation(Config(services=(other,)))
    inbox.put(ConfigLoaded(generation=8, config=Config(services=(svc,)), origin="kubernetes", allocation=handed))
    inbox.put(Control.STOP)
    run_status_allocator(WorkerSettings(name="allocator", node_name="n1"), inbox, outbox)
    done: list[AllocationDone] = []
    while not outbox.empty():
        message = outbox.get_nowait()
        if isinstance(message, AllocationDone):
            done.append(message)
    assert [(d.generation, d.result.ips_of(svc.key)) for d in done] == [(7, (ipaddress.ip_address("10.0.10.10"),)),
                                                                          (8, ())]
    assert done[1].result == handed


def test_a_service_with_both_ip_fields_does_not_stop_the_speaker(runbook_api: FakeApiServer) -> None:
    """Issue 11: the speaker keeps loading configs (and announcing the others) around an invalid Service."""
    from supervisor.messages import ConfigRejected

    for name, ip in (("n1", "10.0.0.1"), ("n2", "10.0.0.2")):
        runbook_api.create(node(name, ip))
        runbook_api.create(pod(f"speaker-{name}", name, ip))
    for name, status_ip in (("web", "10.0.10.10"), ("held", "10.0.10.11"), ("both", None)):
        svc = service(name)
        if name != "web":  # both ask for their IP twice; held got its IP before it did
            svc["spec"]["loadBalancerIP"] = "10.0.10.40"
            svc["metadata"]["annotations"] = {"metallb.io/loadBalancerIPs": "10.0.10.41"}
        runbook_api.create(svc)
        if status_ip:
            runbook_api.update_status("Service", "default", name, {"loadBalancer": {"ingress": [{"ip": status_ip}]}})
        # MetalLB announces a Service only while one of its endpoints can serve.
        runbook_api.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-1", "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.244.0.5"], "nodeName": "n1", "conditions": {"ready": True}}]})
    out: queue.Queue[Emitted] = queue.Queue()
    options = WatchOptions(speaker_pods=True, debounce_seconds=0.02, watch_timeout_seconds=5, backoff_max_seconds=0.2)
    watcher = KubeWatcher(RawClient.connect(host=runbook_api.url), options, out.put)
    watcher.start()
    try:
        def complete() -> ConfigLoaded | None:
            message = out.get(timeout=5)
            assert not isinstance(message, ConfigRejected), [str(d) for d in message.diagnostics]
            return message if len(message.config.services) == 3 else None

        loaded = wait_for(complete, what="a config with the three Services")
        problems = {s.name: s.problem for s in loaded.config.services}
        assert problems["web"] is None and "both spec.loadBalancerIP" in (problems["both"] or "")
        assert any(d.is_error and d.name == "default/both" for d in loaded.warnings)
        result = speaker_allocation(loaded.config)
        assert {k.name: [str(ip) for ip in a.ips] for k, a in result.assignments.items()} == {
            "web": ["10.0.10.10"], "held": ["10.0.10.11"]}
        # The layer 2 announcer's own plan (what every speaker computes) elects a node for both.
        from plugins.layer2.planning import plan
        from supervisor.announcing.api import AnnouncerView

        view = AnnouncerView(node_name="n1", mode="kubernetes", config=loaded.config,
                             assignments=tuple(result.assignments.values()), members=frozenset({"n1", "n2"}))
        assert {e.service.name for e in plan(view).elections if e.winner} == {"web", "held"}
    finally:
        watcher.stop()
