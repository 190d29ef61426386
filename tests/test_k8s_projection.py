"""The watch cache keeps the fields metalloid reads of each API object, and drops the rest.

Objects here are shaped as a real API server returns them (managedFields,
kubectl's last-applied annotation, a Node's images and heartbeats, a Pod's
containers, an EndpointSlice's targetRef and ports), so a field a reader
needs and the projection dropped shows up as a different Config, Event or
peer address.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

from supervisor.kubernetes import kinds
from supervisor.kubernetes.cache import ObjectCache
from supervisor.kubernetes.events import EventRecorder
from supervisor.kubernetes.families import family_events
from supervisor.kubernetes.peers import speaker_addresses
from supervisor.kubernetes.projection import LAST_APPLIED, project
from supervisor.kubernetes.statuswriter import annotation_of, ingress_of, missing_family
from supervisor.kubernetes.watcher import KubeWatcher, WatchOptions, build_config

MANAGED = [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {}}, "f:spec": {"f:ports": {}}}}]


def service(name: str = "web", **annotations: str) -> dict[str, Any]:
    """A LoadBalancer Service as the API returns it, dual-stack, with MetalLB's annotations."""
    obj: dict[str, Any] = {
        "metadata": {
            "name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "41",
            "generation": 3, "creationTimestamp": "2026-12-01T10:00:00Z", "labels": {"app": name},
            "annotations": {"metallb.io/ip-allocated-from-pool": "first-pool",
                            "metallb.universe.tf/allow-shared-ip": "k", **annotations},
            "managedFields": MANAGED, "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
        },
        "spec": {
            "type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
            "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack", "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}],
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000, "sessionAffinity": "None",
            "allocateLoadBalancerNodePorts": True, "internalTrafficPolicy": "Cluster",
            "loadBalancerIP": "10.0.10.20",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.10.20", "ipMode": "VIP"}]},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }
    return obj


def endpoint_slice(service_name: str = "web") -> dict[str, Any]:
    return {
        "metadata": {"name": f"{service_name}-x7k2p", "namespace": "default", "uid": "uid-slice",
                     "resourceVersion": "42", "generateName": f"{service_name}-",
                     "labels": {"kubernetes.io/service-name": service_name,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                     "ownerReferences": [{"kind": "Service", "name": service_name, "uid": "uid-web"}],
                     "managedFields": MANAGED},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.5"], "nodeName": "n1", "zone": "a",
             "conditions": {"ready": True, "serving": True, "terminating": False},
             "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "uid-pod-1"}},
            # Terminating but still serving: MetalLB counts it for an externalTrafficPolicy Local Service.
            {"addresses": ["10.244.2.7"], "nodeName": "n2", "zone": "b",
             "conditions": {"ready": False, "serving": True, "terminating": True},
             "targetRef": {"kind": "Pod", "name": "web-2", "namespace": "default", "uid": "uid-pod-2"},
             "hints": {"forZones": [{"name": "b"}]}},
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def node(name: str = "n1", ip: str = "10.0.0.1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "77",
                     "labels": {"kubernetes.io/hostname": name, "zone": "a"},
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}, "managedFields": MANAGED},
        "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-07T07:00:00Z",
                 "reason": "KubeletReady", "message": "kubelet is posting ready status"},
                {"type": "NetworkUnavailable", "status": "False", "lastHeartbeatTime": "2026-12-07T07:00:00Z"},
            ],
            "images": [{"names": [f"registry.example/image-{i}:v1"], "sizeBytes": 1000 + i} for i in range(50)],
            "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian"},
            "capacity": {"cpu": "4"}, "allocatable": {"cpu": "4"},
        },
    }


def speaker_pod(node_name: str = "n1", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"speaker-{node_name}", "namespace": "metallb-system", "uid": f"uid-speaker-{node_name}",
                     "resourceVersion": "9", "labels": {"app": "metalloid", "component": "speaker"},
                     "managedFields": MANAGED, **metadata},
        "spec": {"nodeName": node_name, "hostNetwork": True,
                 "containers": [{"name": "speaker", "image": "metalloid:1", "args": ["speaker"] * 20}]},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.0.0.1",
                   "containerStatuses": [{"name": "speaker", "ready": True, "restartCount": 0}]},
    }


def pool() -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "first-pool", "namespace": "metallb-system", "uid": "uid-pool",
                         "resourceVersion": "5", "managedFields": MANAGED,
                         "annotations": {LAST_APPLIED: '{"kind": "IPAddressPool"}'}},
            "spec": {"addresses": ["10.0.10.0/24", "fd00::/120"], "autoAssign": True, "unknownField": 1},
            "status": {"assignedIPv4": 1}}


def namespace() -> dict[str, Any]:
    return {"metadata": {"name": "default", "uid": "uid-ns", "labels": {"team": "web"}, "managedFields": MANAGED},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def walk(value: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a JSON value (list items as [])."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield f"{prefix}{key}"
            yield from walk(inner, f"{prefix}{key}.")
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, f"{prefix[:-1]}[].")


CLUSTER: list[tuple[kinds.Kind, dict[str, Any]]] = [
    (kinds.SERVICE, service()), (kinds.SERVICE, service("db", **{LAST_APPLIED: "{}"})),
    (kinds.ENDPOINT_SLICE, endpoint_slice()), (kinds.NODE, node()), (kinds.NODE, node("n2", "10.0.0.2")),
    (kinds.NAMESPACE, namespace()), (kinds.IP_ADDRESS_POOL, pool()),
    (kinds.L2_ADVERTISEMENT, {"metadata": {"name": "l2", "namespace": "metallb-system"}, "spec": {}}),
]


def whole(kind: kinds.Kind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the cache kept before the projection: the API's dict minus managedFields."""
    kept = copy.deepcopy(dict(obj))
    kept["metadata"].pop("managedFields", None)
    kept["kind"], kept["apiVersion"] = kind.kind, kind.api_version
    return kept


def without_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    (obj["metadata"].get("annotations") or {}).pop(LAST_APPLIED, None)
    return obj


def test_the_config_built_from_projections_is_the_config_built_from_whole_objects() -> None:
    # The last-applied annotation aside (dropped on purpose, below), parsing sees no difference:
    # every Service, EndpointSlice (readiness included), Node, Namespace and pool, every diagnostic.
    projected, diags = build_config([project(k, o) for k, o in CLUSTER], lb_class=None)
    expected, expected_diags = build_config([without_last_applied(whole(k, o)) for k, o in CLUSTER], lb_class=None)
    assert projected == expected and projected.services and projected.endpoint_slices and projected.nodes
    assert [str(d) for d in diags] == [str(d) for d in expected_diags]
    assert any("unknownField" in str(d) for d in diags), "a MetalLB kind keeps its whole spec: typos are still told"
    (web,) = [s for s in projected.services if s.name == "web"]
    assert dict(web.annotations) == {"metallb.io/ip-allocated-from-pool": "first-pool",
                                     "metallb.universe.tf/allow-shared-ip": "k"}
    (eps,) = projected.endpoint_slices
    assert [(e.node_name, e.ready, e.serving) for e in eps.endpoints] == [("n1", True, True), ("n2", False, True)]


def test_what_the_api_side_reads_survives() -> None:
    web = project(kinds.SERVICE, service())
    # The controller's status writer: ingress, the pool annotation, resourceVersion; families: clusterIPs.
    assert ingress_of(web) == ("10.0.10.20",) and annotation_of(web) == "first-pool"
    assert web["metadata"]["resourceVersion"] == "41" and web["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
    full = whole(kinds.SERVICE, service())
    assert missing_family(web, ("10.0.10.20",)) == missing_family(full, ("10.0.10.20",)) is not None
    assert family_events(web, ("10.0.10.20",)) == family_events(full, ("10.0.10.20",))
    assert web["spec"] == service()["spec"], "a Service's spec is kept whole"
    # Events: the involvedObject of a Service and of a Node.
    posted: list[dict[str, Any]] = []

    class Client:
        def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> dict[str, Any]:
            posted.append(body)
            return {}

    recorder = EventRecorder(Client(), component="metallb-speaker")  # type: ignore[arg-type]
    recorder.record(web, kinds.SERVICE, "Normal", "nodeAssigned", "m")
    recorder.record(project(kinds.NODE, node()), kinds.NODE, "Warning", "AnnouncerFailed", "m")
    involved = [(b["involvedObject"]["name"], b["involvedObject"]["uid"], b["involvedObject"]["resourceVersion"])
                for b in posted]
    assert involved == [("web", "uid-web", "41"), ("n1", "uid-n1", "77")]
    # The speaker's peers and the status writers' owner reference.
    pods = [project(kinds.POD, speaker_pod()), project(kinds.POD, speaker_pod("n2", deletionTimestamp="x"))]
    assert speaker_addresses(pods) == speaker_addresses([speaker_pod(), speaker_pod("n2", deletionTimestamp="x")])
    assert speaker_addresses(pods) == {"n1": "10.0.0.1"}
    assert pods[0]["metadata"]["uid"] == "uid-speaker-n1" and pods[0]["metadata"]["name"] == "speaker-n1"


def test_what_no_one_reads_is_dropped() -> None:
    kept = {kind.kind: set(walk(project(kind, obj))) for kind, obj in
            [(kinds.SERVICE, service(**{LAST_APPLIED: json.dumps(service())})), (kinds.NODE, node()),
             (kinds.ENDPOINT_SLICE, endpoint_slice()), (kinds.POD, speaker_pod()), (kinds.IP_ADDRESS_POOL, pool())]}
    for paths in kept.values():
        assert not {p for p in paths if "managedFields" in p or LAST_APPLIED in p}
    assert not {"metadata.generation", "metadata.creationTimestamp", "metadata.finalizers"} & kept["Service"]
    assert not {p for p in kept["Node"] if p.startswith(("spec", "status.images", "status.nodeInfo"))}
    assert {p for p in kept["Node"] if p.startswith("status.conditions[].")} == {
        "status.conditions[].type", "status.conditions[].status"}
    assert not {"ports", "endpoints[].targetRef", "endpoints[].zone", "endpoints[].hints",
                "metadata.ownerReferences"} & kept["EndpointSlice"]
    assert not {"spec.containers", "spec.hostNetwork", "status.containerStatuses"} & kept["Pod"]
    assert {"spec.addresses", "spec.unknownField", "status.assignedIPv4"} <= kept["IPAddressPool"]


def test_a_projection_is_a_new_dict_with_its_kind_and_leaves_the_api_object_alone() -> None:
    obj = service(**{LAST_APPLIED: "{}"})
    before = copy.deepcopy(obj)
    kept = project(kinds.SERVICE, obj)
    assert obj == before
    assert (kept["kind"], kept["apiVersion"]) == ("Service", "v1")
    assert project(kinds.ENDPOINT_SLICE, endpoint_slice())["apiVersion"] == "discovery.k8s.io/v1"


class ScriptedClient:
    """One list, then the watch events given, then the watcher stops."""

    def __init__(self, watcher_stop: Any, events: list[dict[str, Any]]) -> None:
        self.stop, self.events = watcher_stop, events
        self.watch_versions: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": "41"}, "items": [service()]}

    def watch(self, path: str, *, query: Mapping[str, Any], **_: Any) -> Iterator[dict[str, Any]]:
        self.watch_versions.append(str(query["resourceVersion"]))
        if len(self.watch_versions) > 1:
            self.stop.set()
            return
        yield from self.events


def test_the_cache_holds_projections_from_the_list_and_the_watch_and_versions_are_the_servers() -> None:
    changed = service(**{LAST_APPLIED: "{}"})
    changed["metadata"]["resourceVersion"] = "50"
    changed["spec"]["loadBalancerIP"] = "10.0.10.21"
    events = [{"type": "MODIFIED", "object": changed},
              {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "60"}}}]
    w = KubeWatcher(None, WatchOptions(), lambda message: None)  # type: ignore[arg-type]
    client = ScriptedClient(w.stopping, events)
    w.client = client  # type: ignore[assignment]
    cache: ObjectCache = w.cache
    w._watch_kind(kinds.SERVICE)
    kept = cache.get("Service", "default", "web")
    assert kept == project(kinds.SERVICE, changed)
    assert kept is not None and LAST_APPLIED not in kept["metadata"]["annotations"]
    assert "managedFields" not in kept["metadata"] and kept["spec"]["loadBalancerIP"] == "10.0.10.21"
    # The watch resumed from the last version the server sent, the bookmark's included.
    assert client.watch_versions == ["41", "60"]
