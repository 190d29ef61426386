"""The status writer's Events: emitted on change only, never on every reconcile."""

from __future__ import annotations

from typing import Any

from supervisor.allocating.results import AllocationResult
from supervisor.config.model import ServiceKey
from supervisor.kubernetes.client import ApiError
from supervisor.kubernetes.statuswriter import StatusWriter


class RecordingClient:
    """Answers every call; Event POSTs of a name already created get 409, as the API server does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.events: dict[str, dict[str, Any]] = {}

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> dict[str, Any]:
        self.calls.append((method, path))
        if "/events" in path:
            if method == "POST":
                name = body["metadata"]["name"]
                if name in self.events:
                    raise ApiError(409, "AlreadyExists")
                self.events[name] = dict(body)
                return self.events[name]
            if method == "GET":
                found: dict[str, Any] = self.events[path.rsplit("/", 1)[1]]
                return found
            return {}
        return {}


def legacy_service(name: str, uid: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": "default", "uid": uid, "resourceVersion": "1",
            "annotations": {
                "metallb.universe.tf/address-pool": "nowhere",
                "metallb.universe.tf/allow-shared-ip": "web",
            },
        },
        "spec": {"type": "LoadBalancer"},
        "status": {},
    }  # fmt: skip


def event_writes(client: RecordingClient) -> list[tuple[str, str]]:
    return [c for c in client.calls if "/events" in c[1]]


def test_legacy_annotations_and_pending_write_no_events_on_a_repeat_reconcile() -> None:
    client = RecordingClient()
    writer = StatusWriter(client)  # type: ignore[arg-type]
    key = ServiceKey(namespace="default", name="web")
    result = AllocationResult(assignments={}, pending={key: "pool nowhere does not exist"}, pools=(), warnings=())
    svc = legacy_service("web", "u1")
    writer.apply(result, [svc])
    first = event_writes(client)
    assert sorted(e["reason"] for e in client.events.values()) == [
        "AllocationFailed", "deprecatedAnnotation", "deprecatedAnnotation"
    ]
    # Nothing changed: an unrelated object's update makes the controller reconcile again.
    writer.apply(result, [svc])
    writer.apply(result, [svc])
    assert event_writes(client) == first


def test_recreated_service_gets_its_ip_allocated_event_and_deleted_ones_are_forgotten() -> None:
    client = RecordingClient()
    writer = StatusWriter(client)  # type: ignore[arg-type]
    key = ServiceKey(namespace="default", name="web")
    from ipaddress import ip_address

    from supervisor.allocating.results import Assignment

    result = AllocationResult(
        assignments={key: Assignment(service=key, ips=(ip_address("10.0.10.10"),), pool="p")},
        pending={}, pools=(), warnings=(),
    )  # fmt: skip
    old = {"metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "1"},
           "spec": {"type": "LoadBalancer"}, "status": {}}  # fmt: skip
    writer.apply(result, [old])
    # The Service is deleted (the next reconcile no longer lists it) ...
    empty = AllocationResult(assignments={}, pending={}, pools=(), warnings=())
    writer.apply(empty, [])
    assert writer.recorder._last == {}  # nothing kept for objects that are gone
    # ... and created again under the same name: it gets the same IP and its own Event.
    new = {**old, "metadata": {**old["metadata"], "uid": "u2"}}
    writer.apply(result, [new])
    allocated = [e for e in client.events.values() if e["reason"] == "IPAllocated"]
    assert [e["involvedObject"]["uid"] for e in allocated] == ["u1", "u2"]
