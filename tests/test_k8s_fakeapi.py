"""The fake API server speaks what the official `kubernetes` client expects (typed models, Watch)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import kubernetes.client as k8s
import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import pool, service
from tests.fakeapi.matching import json_patch, label_selector, merge_patch
from tests.runtime_helpers import wait_for


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(history=5, bookmark_interval=0.1) as server:
        yield server


@pytest.fixture
def client(api: FakeApiServer) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    configuration.host = api.url
    return k8s.ApiClient(configuration)


def test_create_201_then_409_and_list_resource_version(api: FakeApiServer, client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(client)
    created = core.create_namespaced_service("default", service("web"))
    assert created.metadata.resource_version == "1" and created.metadata.uid
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service("default", service("web"))
    assert err.value.status == 409 and "AlreadyExists" in err.value.body
    listed = core.list_namespaced_service("default")
    assert listed.metadata.resource_version == "1" and [s.metadata.name for s in listed.items] == ["web"]


def test_stale_update_is_409_and_status_is_a_separate_subresource(api: FakeApiServer, client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(client)
    first = core.create_namespaced_service("default", service("web"))
    core.patch_namespaced_service("web", "default", {"metadata": {"labels": {"a": "b"}}})
    first.spec.type = "ClusterIP"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_service("web", "default", first)
    assert err.value.status == 409
    # The main resource ignores status; /status changes only status.
    core.patch_namespaced_service("web", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}})
    assert "status" not in api.get("Service", "default", "web")
    core.patch_namespaced_service_status(
        "web", "default", {"spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    )
    read = core.read_namespaced_service("web", "default")
    assert read.spec.type == "LoadBalancer" and read.status.load_balancer.ingress[0].ip == "1.1.1.1"


def test_watch_from_version_with_bookmarks_and_410(api: FakeApiServer, client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(client)
    core.create_namespaced_service("default", service("a"))
    version = core.list_service_for_all_namespaces().metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        stream = watch.Watch().stream(
            core.list_service_for_all_namespaces,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
        for event in stream:
            obj: Any = event["object"]
            seen.append((event["type"], obj.metadata.name if event["type"] != "BOOKMARK" else "-"))

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_service("default", service("b"))
    core.delete_namespaced_service("a", "default")
    t.join(5)
    assert seen[:2] == [("ADDED", "b"), ("DELETED", "a")] and ("BOOKMARK", "-") in seen
    for n in range(6):  # history is 5 events: version "1" is compacted away
        core.create_namespaced_service("default", service(f"x{n}"))
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core.list_service_for_all_namespaces, resource_version="1", timeout_seconds=1):
            pass
    assert err.value.status == 410


def test_custom_resources_and_pool_status(client: k8s.ApiClient) -> None:
    custom = k8s.CustomObjectsApi(client)
    custom.create_namespaced_custom_object(
        "metallb.io", "v1beta1", "metallb-system", "ipaddresspools", pool("p", "10.0.0.0/30")
    )
    custom.patch_namespaced_custom_object_status(
        "metallb.io", "v1beta1", "metallb-system", "ipaddresspools", "p", {"status": {"availableIPv4": 4}}
    )
    got = custom.get_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools", "p")
    assert got["status"] == {"availableIPv4": 4} and got["kind"] == "IPAddressPool"
    peer = {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": "r"},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"},
    }
    custom.create_namespaced_custom_object("metallb.io", "v1beta2", "metallb-system", "bgppeers", peer)
    assert (
        custom.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "bgppeers")["items"][0][
            "apiVersion"
        ]
        == "metallb.io/v1beta1"
    )


def test_outage_and_blocked_clients(api: FakeApiServer, client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(client)
    with api.outage("503"), pytest.raises(ApiException) as err:
        core.list_node()
    assert err.value.status == 503
    assert core.list_node().items == []


def test_coordination_leases_and_events(client: k8s.ApiClient) -> None:
    leases = k8s.CoordinationV1Api(client)
    body = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15}}
    created = leases.create_namespaced_lease("metallb-system", body)
    created.spec.holder_identity = "y"
    leases.replace_namespaced_lease("l", "metallb-system", created)
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("l", "metallb-system", created)
    assert err.value.status == 409
    core = k8s.CoreV1Api(client)
    event = {
        "metadata": {"generateName": "x."},
        "involvedObject": {"name": "web"},
        "reason": "IPAllocated",
        "message": "m",
    }
    core.create_namespaced_event("default", event)
    assert [e.reason for e in core.list_namespaced_event("default").items] == ["IPAllocated"]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=metalloid,component=speaker", {"app": "metalloid", "component": "speaker"}, True),
        ("app=metalloid,component=speaker", {"app": "metalloid"}, False),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier notin (a,b)", {"tier": "b"}, False),
        ("!skip", {}, True),
        ("present", {}, False),
        ("x!=1", {"x": "2"}, True),
    ],
    ids=["equality", "missing-label", "in", "notin", "not-exists", "exists", "inequality"],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert label_selector(selector)({"metadata": {"labels": labels}}) is expected


def test_patches() -> None:
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge_patch(doc, {"a": {"b": None, "c": [3]}, "e": 2}) == {"a": {"c": [3]}, "d": 1, "e": 2}
    ops = [
        {"op": "add", "path": "/a/c/-", "value": 3},
        {"op": "remove", "path": "/d"},
        {"op": "test", "path": "/a/b", "value": 1},
    ]
    assert json_patch(doc, ops) == {"a": {"b": 1, "c": [1, 2, 3]}}
    wait_for(lambda: True)
