"""The controller against the fake API server: the runbook's answers, events, restarts, faults."""

from __future__ import annotations

import random
from collections.abc import Iterator

import kubernetes.client as k8s
import pytest
import yaml

from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.controller import ControllerLoop
from supervisor.kubernetes.statuswriter import POOL_ANNOTATION
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import (
    RUNBOOK_L2,
    RUNBOOK_POOL,
    controller_options,
    events_for,
    ingress,
    pool,
    running_controller,
    service,
)
from tests.runtime_helpers import wait_for

# Only bounds how long a failure takes to show: on a loaded 2-core machine the controller's first
# reconcile of the runbook has taken longer than wait_for's default 5 s.
SLOW = 15.0


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(history=100_000, bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
def runbook(api: FakeApiServer) -> FakeApiServer:
    """The runbook's pool and advertisement, applied unchanged through the real client."""
    configuration = k8s.Configuration()
    configuration.host = api.url
    custom = k8s.CustomObjectsApi(k8s.ApiClient(configuration))
    for text, plural in ((RUNBOOK_POOL, "ipaddresspools"), (RUNBOOK_L2, "l2advertisements")):
        custom.create_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", plural, yaml.safe_load(text))
    return api


def test_runbook_service_gets_first_ip_event_and_pool_counts(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("ingress-nginx-controller", "ingress-nginx"))
    with running_controller(api):
        ips = wait_for(lambda: ingress(api, "ingress-nginx-controller", "ingress-nginx"), what="ingress IP")
        assert ips == ["10.0.10.10"]
        status = wait_for(lambda: api.get("IPAddressPool", "metallb-system", "first-pool").get("status"))
        assert status == {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 89, "availableIPv6": 0}
        svc = api.get("Service", "ingress-nginx", "ingress-nginx-controller")
        assert svc["metadata"]["annotations"][POOL_ANNOTATION] == "first-pool"
        events = events_for(api, "ingress-nginx-controller", "ingress-nginx")
        assert [(e["reason"], e["type"], e["message"]) for e in events] == [
            ("IPAllocated", "Normal", 'Assigned IP ["10.0.10.10"]')
        ]


def test_kubectl_field_selector_lists_load_balancers(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("web"))
    api.create({**service("internal"), "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}})
    configuration = k8s.Configuration()
    configuration.host = api.url
    core = k8s.CoreV1Api(k8s.ApiClient(configuration))
    with running_controller(api):
        wait_for(lambda: ingress(api, "web"))
        found = core.list_service_for_all_namespaces(field_selector="spec.type=LoadBalancer").items
        assert [(s.metadata.name, s.status.load_balancer.ingress[0].ip) for s in found] == [("web", "10.0.10.10")]


def test_ip_outside_every_pool_is_allocation_failed_with_reason(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("pi-hole", "pihole", loadBalancerIP="10.0.0.200"))
    api.create(service("web"))
    with running_controller(api):
        wait_for(lambda: ingress(api, "web"))
        failed = wait_for(lambda: events_for(api, "pi-hole", "pihole"), what="AllocationFailed event")
        assert [e["reason"] for e in failed] == ["AllocationFailed"]
        assert failed[0]["type"] == "Warning"
        assert "10.0.0.200" in failed[0]["message"] and "pihole/pi-hole" in failed[0]["message"]
        assert ingress(api, "pi-hole", "pihole") == []


def test_reconcile_twice_writes_one_event(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("pi-hole", "pihole", loadBalancerIP="10.0.0.200"))
    api.create(service("web"))
    with running_controller(api) as loop:
        wait_for(lambda: events_for(api, "pi-hole", "pihole") and events_for(api, "web"))
        before = loop.allocations
        # Unrelated changes make the controller reconcile everything again.
        api.create(service("other", "elsewhere"))
        wait_for(lambda: ingress(api, "other", "elsewhere"))
        loop.core.watcher.force_emit()
        wait_for(lambda: loop.allocations >= before + 2, what="two more reconciles")
    # And a restarted controller repeats nothing either.
    with running_controller(api) as again:
        wait_for(lambda: again.core.applied >= 1, what="the restarted controller to reconcile as leader")
    assert [e["reason"] for e in events_for(api, "pi-hole", "pihole")] == ["AllocationFailed"]
    assert [e["reason"] for e in events_for(api, "web")] == ["IPAllocated"]
    assert [e.get("count") for e in events_for(api, "pi-hole", "pihole")] == [1]


def test_release_on_type_change_and_reuse_after_delete(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("a"))
    with running_controller(api):
        wait_for(lambda: ingress(api, "a") == ["10.0.10.10"])
        obj = api.get("Service", "default", "a")
        obj["spec"]["type"] = "ClusterIP"
        api.store.update(api.store_resource("Service"), "default", "a", obj, subresource=None)
        wait_for(lambda: ingress(api, "a") == [], what="released status")
        assert POOL_ANNOTATION not in (api.get("Service", "default", "a")["metadata"].get("annotations") or {})
        wait_for(lambda: "ClearAssignment" in [e["reason"] for e in events_for(api, "a")], what="ClearAssignment")
        api.create(service("b"))
        assert wait_for(lambda: ingress(api, "b")) == ["10.0.10.10"]


def test_lb_class_is_honoured(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("mine", loadBalancerClass="metalloid.io/lb"))
    api.create(service("default-class"))
    with running_controller(api, lb_class="metalloid.io/lb"):
        assert wait_for(lambda: ingress(api, "mine")) == ["10.0.10.10"]
        api.create(service("probe", loadBalancerClass="metalloid.io/lb"))
        wait_for(lambda: ingress(api, "probe"))
        assert ingress(api, "default-class") == []


def test_invalid_config_is_a_warning_event_and_condition_and_keeps_last_good(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("a"))
    with running_controller(api):
        wait_for(lambda: ingress(api, "a"))
        api.create(pool("broken", "10.0.20.0/33"))
        events = wait_for(
            lambda: [e for e in api.list("Event", "metallb-system") if e["reason"] == "InvalidConfiguration"],
            what="InvalidConfiguration event",
        )
        assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["name"] == "broken"
        conditions = wait_for(
            lambda: (api.get("IPAddressPool", "metallb-system", "broken").get("status") or {}).get("conditions")
        )
        assert conditions[0]["status"] == "False"
        assert ingress(api, "a") == ["10.0.10.10"]


def test_a_service_with_both_ip_fields_fails_alone(runbook: FakeApiServer) -> None:
    """Issue 11: MetalLB confines an invalid Service to itself; the controller keeps reconciling the others."""
    api = runbook
    both = service("both", loadBalancerIP="10.0.10.20")
    both["metadata"]["annotations"] = {"metallb.io/loadBalancerIPs": "10.0.10.21"}
    api.create(both)
    api.create(service("web"))
    api.create(service("held"))
    with running_controller(api):
        assert wait_for(lambda: ingress(api, "web"), SLOW) and wait_for(lambda: ingress(api, "held"), SLOW)
        failed = wait_for(lambda: events_for(api, "both"), SLOW, what="AllocationFailed event")
        assert [(e["type"], e["reason"]) for e in failed] == [("Warning", "AllocationFailed")]
        assert failed[0]["message"].startswith(
            'Failed to allocate IP for "default/both": both spec.loadBalancerIP (10.0.10.20) and annotation '
            "metallb.io/loadBalancerIPs (10.0.10.21) are set")
        assert ingress(api, "both") == []
        # A Service that holds an IP and then asks for it twice keeps it, as in MetalLB (LoadBalancerFailed).
        held_ips = ingress(api, "held")
        obj = api.get("Service", "default", "held")
        obj["spec"]["loadBalancerIP"] = "10.0.10.30"
        obj["metadata"]["annotations"] = {**obj["metadata"].get("annotations", {}),
                                          "metallb.io/loadBalancerIPs": "10.0.10.31"}
        api.store.update(api.store_resource("Service"), "default", "held", obj, subresource=None)
        kept = wait_for(lambda: [e for e in events_for(api, "held") if e["reason"] == "LoadBalancerFailed"],
                        SLOW, what="LoadBalancerFailed event")
        assert kept[0]["type"] == "Warning" and kept[0]["message"].startswith(
            "invalid requested loadbalancer IPs: both spec.loadBalancerIP (10.0.10.30)")
        assert ingress(api, "held") == held_ips
        # The rest of the cluster still reconciles: a new Service gets an IP.
        api.create(service("later"))
        assert wait_for(lambda: ingress(api, "later"), SLOW)
        assert ingress(api, "both") == []


def test_no_valid_config_at_start_touches_no_service(api: FakeApiServer) -> None:
    """Like MetalLB before its first valid configuration: nothing is allocated or cleared."""
    api.create(pool("broken", "10.0.20.0/33"))
    api.create(service("web"))
    api.update_status("Service", "default", "web", {"loadBalancer": {"ingress": [{"ip": "10.0.20.5"}]}})
    with running_controller(api) as loop:
        wait_for(lambda: [e for e in api.list("Event", "metallb-system") if e["reason"] == "InvalidConfiguration"],
                 what="InvalidConfiguration event")
        assert loop.allocations == 0 and loop.core.watcher.last_good_generation == 0
        assert ingress(api, "web") == ["10.0.20.5"] and events_for(api, "web") == []
        obj = api.get("IPAddressPool", "metallb-system", "broken")
        obj["spec"]["addresses"] = ["10.0.20.0/24"]
        api.store.update(api.store_resource("IPAddressPool"), "metallb-system", "broken", obj, subresource=None)
        wait_for(lambda: loop.allocations >= 1, what="the first allocation once the pool is valid")
        assert ingress(api, "web") == ["10.0.20.5"]


def test_restarts_change_no_ip(api: FakeApiServer) -> None:
    """100 controller restarts (crash or graceful), services created in bursts in between and during.

    Some Services are deleted on the way: their IPs become holes that a
    controller allocating from scratch (not from status) would fill with the
    next Services in name order, moving them.
    """
    api.create(pool("big", "10.0.0.0/24"))
    rng = random.Random(6)
    created, deleted = 0, set[str]()

    def names() -> list[str]:
        return [f"s{i:03d}" for i in range(created) if f"s{i:03d}" not in deleted]

    for restart in range(100):
        # A fresh client each time, as a restarted process would have.
        client = RawClient.connect(host=api.url, user_agent="metalloid/controller-a")
        loop = ControllerLoop(client, controller_options("controller-a")).start()
        for _ in range(rng.randint(0, 3)):
            api.create(service(f"s{created:03d}"))
            created += 1
        if restart % 7 == 3 and names():
            victim = rng.choice(names()[: max(1, len(names()) // 2)])
            api.store.delete(api.store_resource("Service"), "default", victim)
            deleted.add(victim)
        if restart % 10 == 0:
            wait_for(lambda: all(ingress(api, n) for n in names()), what="convergence")
        elif rng.random() < 0.5:
            wait_for(lambda lp=loop: lp.allocations >= 1, what="one allocation")
        loop.stop(release=rng.random() < 0.5)
        client.close()
    client = RawClient.connect(host=api.url, user_agent="metalloid/controller-a")
    final = ControllerLoop(client, controller_options("controller-a")).start()
    try:
        wait_for(lambda: all(ingress(api, n) for n in names()), timeout=10, what="all IPs")
    finally:
        final.stop()
    held = [ingress(api, n)[0] for n in names()]
    assert len(set(held)) == len(held) and deleted
    # Every Service's ingress went from nothing to one IP and never moved.
    history: dict[str, list[tuple[str, ...]]] = {}
    for event in api.store._events:
        if event.plural == "services" and event.type != "DELETED":
            ips = tuple(
                i["ip"] for i in ((event.obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            )
            seen = history.setdefault(event.obj["metadata"]["name"], [])
            if not seen or seen[-1] != ips:
                seen.append(ips)
    moved = {name: seq for name, seq in history.items() if len([s for s in seq if s]) > 1 or seq[-1] == ()}
    assert {n: s for n, s in moved.items() if n not in deleted or len([x for x in s if x]) > 1} == {}


def test_survives_outage_and_410(runbook: FakeApiServer) -> None:
    api = runbook
    api.create(service("before"))
    with running_controller(api) as loop:
        wait_for(lambda: ingress(api, "before"))
        with api.outage("close"):
            api.create(service("during"))
            wait_for(lambda: loop.core.watcher.reconnects > 0, what="reconnect attempts")
        assert wait_for(lambda: ingress(api, "during"), timeout=10) == ["10.0.10.11"]
        with api.outage("503"):
            api.create(service("during-503"))
        assert wait_for(lambda: ingress(api, "during-503"), timeout=10) == ["10.0.10.12"]
        api.faults.gone_next_watches = 8
        api.store.compact()
        api.break_watches()
        api.create(service("after-410"))
        assert wait_for(lambda: ingress(api, "after-410"), timeout=10) == ["10.0.10.13"]
        wait_for(lambda: loop.core.watcher.relists >= 1, what="a re-list after 410 Gone")
        # A deletion during the gap is seen by the re-list: its IP is free again.
        api.faults.gone_next_watches = 8
        api.store.delete(api.store_resource("Service"), "default", "before")
        api.store.compact()
        api.break_watches()
        api.create(service("reuse"))
        assert wait_for(lambda: ingress(api, "reuse"), timeout=10) == ["10.0.10.10"]
    assert ingress(api, "during") == ["10.0.10.11"]


def test_the_forwarded_config_carries_the_allocation_written_to_status(runbook: FakeApiServer) -> None:
    """One allocation: what the supervisor's allocator worker passes on is what was written."""
    from supervisor.allocating.worker import AllocatorCore
    from supervisor.messages import AllocationDone, ConfigLoaded

    api = runbook
    api.create(service("web"))
    forwarded: list[object] = []
    client = RawClient.connect(host=api.url, user_agent="metalloid/controller-a")
    loop = ControllerLoop(client, controller_options("controller-a"), forward=forwarded.append).start()
    try:
        assert wait_for(lambda: ingress(api, "web"), what="ingress IP") == ["10.0.10.10"]
        loaded = wait_for(lambda: next((m for m in forwarded if isinstance(m, ConfigLoaded)), None))
    finally:
        loop.stop()
        client.close()
    assert loaded.allocation is not None and loop.allocations >= 1
    assert [str(ip) for ip in loaded.allocation.ips_of(next(iter(loaded.allocation.assignments)))] == ["10.0.10.10"]
    # The allocator worker answers with that very result instead of computing another one.
    answers = list(AllocatorCore(state_dir=None, previous={}).handle(loaded))
    assert answers == [AllocationDone(generation=loaded.generation, result=loaded.allocation)]
    assert answers[0].result is loaded.allocation
