"""The per-node Service status objects speakers write: ServiceL2Status and ServiceBGPStatus.

Both are MetalLB's shape: one object per (Service, node announcing it) in the
speaker's namespace, named by a prefix plus a random suffix (`generateName`),
labelled `metallb.io/node`, `metallb.io/service-name`,
`metallb.io/service-namespace`, owned by the speaker's pod (so it goes with the
pod), with `status.{node, serviceName, serviceNamespace, ...}` and an empty
spec. What each kind adds to the status (`Flavor.details`) comes from the
announcer's real state, never from an election of our own.

Written on change only: `ServiceStatusWriter.update` does nothing when the
wanted set equals the last one it applied; otherwise it lists the statuses
once and creates, patches and deletes what differs. `Flavor.exclusive`: one
node announces a Service (layer 2), so the announcing node also deletes
another node's status for the same Service, as MetalLB's layer 2 reconciler
does (a dead speaker cannot delete its own). In BGP every eligible node
advertises, each writes its own, and a node touches only its own objects
(listed by the node label).

This module does not decide what is announced (`l2status`, `bgpstatus` read
that from `AnnouncerState`) and writes nothing else (Events: `speaker`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from supervisor.config.model import ServiceKey
from supervisor.kubernetes.client import MERGE_PATCH, ApiError, RawClient
from supervisor.kubernetes.kinds import Kind

log = logging.getLogger(__name__)

Obj = dict[str, Any]

LABEL_NODE = "metallb.io/node"
LABEL_SERVICE_NAME = "metallb.io/service-name"
LABEL_SERVICE_NAMESPACE = "metallb.io/service-namespace"

# Service → what this node's status lists for it (interfaces, or peers), sorted.
Wanted = Mapping[ServiceKey, tuple[str, ...]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Flavor:
    """What differs between the status kinds.

    `details(values)` is the kind's own part of `status`, as a merge patch
    writes it: a key with None removes it (a list is replaced whole, so fewer
    values shrink it; none removes the key, as MetalLB's omitempty leaves it out).
    """

    kind: Kind
    generate_name: str
    exclusive: bool
    details: Callable[[tuple[str, ...]], Obj]
    log_name: str  # "l2status", "bgpstatus": the log events' prefix


def status_body(flavor: Flavor, node: str, key: ServiceKey, values: tuple[str, ...]) -> Obj:
    """The object's `status` as the API returns it (keys with None left out)."""
    status: Obj = {"node": node, "serviceName": key.name, "serviceNamespace": key.namespace}
    status.update({k: v for k, v in flavor.details(values).items() if v is not None})
    return status


def _service_of(obj: Mapping[str, Any]) -> ServiceKey | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    name, namespace = labels.get(LABEL_SERVICE_NAME), labels.get(LABEL_SERVICE_NAMESPACE)
    return ServiceKey(namespace=str(namespace), name=str(name)) if name and namespace else None


class ServiceStatusWriter:
    """Writes one kind of per-node status (`flavor`, set by each subclass) for this node."""

    flavor: ClassVar[Flavor]

    def __init__(
        self,
        client: RawClient,
        *,
        namespace: str,
        node: str,
        owner: Callable[[], Mapping[str, Any] | None] = lambda: None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.node = node
        self.owner = owner  # the speaker's own Pod, when known: the owner reference
        self._applied: dict[ServiceKey, tuple[str, ...]] | None = None
        self.writes = 0

    def update(self, wanted: Wanted) -> bool:
        """Make the API hold exactly `wanted` for this node; True when it does (False: try again later)."""
        wanted = dict(wanted)
        if wanted == self._applied:
            return True
        kind, name = self.flavor.kind, self.flavor.log_name
        # Exclusive kinds list every node's objects (another node's status for a
        # Service this node announces goes); the others only this node's.
        query = None if self.flavor.exclusive else {"labelSelector": f"{LABEL_NODE}={self.node}"}
        try:
            listed = self.client.request("GET", kind.path(self.namespace), query=query)
        except ApiError as exc:
            log.warning("%s.failed action=list error=%s", name, exc)
            return False
        ok = True
        mine: dict[ServiceKey, Obj] = {}
        for obj in listed.get("items") or []:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            key = _service_of(obj)
            ours = labels.get(LABEL_NODE) == self.node
            if ours and key in wanted and key not in mine:
                mine[key] = obj
            elif ours or (self.flavor.exclusive and key in wanted):
                # Ours but no longer announced (or a duplicate), or another
                # node's for a Service this node alone announces now.
                ok = self._delete(obj) and ok
        for key, values in wanted.items():
            want = status_body(self.flavor, self.node, key, values)
            obj = mine.get(key) or self._create(key)
            if obj is None:
                ok = False
            elif obj.get("status") != want:
                ok = self._patch_status(obj, key, values) and ok
        if ok:
            self._applied = wanted
        return ok

    def _create(self, key: ServiceKey) -> Obj | None:
        kind = self.flavor.kind
        meta: Obj = {
            "generateName": self.flavor.generate_name,
            "namespace": self.namespace,
            "labels": {LABEL_NODE: self.node, LABEL_SERVICE_NAME: key.name, LABEL_SERVICE_NAMESPACE: key.namespace},
        }
        pod = self.owner()
        if pod is not None and (pod.get("metadata") or {}).get("uid"):
            pod_meta = pod["metadata"]
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod_meta.get("name"),
                                        "uid": pod_meta["uid"]}]  # fmt: skip
        body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, "spec": {}}
        try:
            created = self.client.request("POST", kind.path(self.namespace), body=body)
        except ApiError as exc:
            log.warning("%s.failed action=create service=%s error=%s", self.flavor.log_name, key, exc)
            return None
        self.writes += 1
        log.info("%s.created service=%s name=%s", self.flavor.log_name, key,
                 (created.get("metadata") or {}).get("name"))  # fmt: skip
        return created

    def _patch_status(self, obj: Obj, key: ServiceKey, values: tuple[str, ...]) -> bool:
        name = (obj.get("metadata") or {}).get("name")
        status = {"node": self.node, "serviceName": key.name, "serviceNamespace": key.namespace,
                  **self.flavor.details(values)}  # fmt: skip
        try:
            self.client.request("PATCH", self.flavor.kind.path(self.namespace, name, "status"),
                                body={"status": status}, content_type=MERGE_PATCH)  # fmt: skip
        except ApiError as exc:
            log.warning("%s.failed action=patch name=%s error=%s", self.flavor.log_name, name, exc)
            return False
        self.writes += 1
        log.info("%s.updated name=%s node=%s service=%s values=%s", self.flavor.log_name, name, self.node, key,
                 ",".join(values) or "-")  # fmt: skip
        return True

    def _delete(self, obj: Obj) -> bool:
        name = (obj.get("metadata") or {}).get("name")
        try:
            self.client.request("DELETE", self.flavor.kind.path(self.namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return True
            log.warning("%s.failed action=delete name=%s error=%s", self.flavor.log_name, name, exc)
            return False
        self.writes += 1
        log.info("%s.deleted name=%s service=%s", self.flavor.log_name, name, _service_of(obj))
        return True
