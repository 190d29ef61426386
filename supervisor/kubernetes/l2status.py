"""ServiceL2Status: one object per Service this speaker announces in layer 2 mode, as MetalLB writes it.

What goes in comes from the layer 2 announcer's real state (`AnnouncerState`,
passed on by the announcer host), never from an election of our own: the node
that answers ARP/NDP and the interfaces it answers on. MetalLB's shape: named
`l2-` plus a random suffix, in the speaker's namespace, labelled
`metallb.io/node`, `metallb.io/service-name`, `metallb.io/service-namespace`,
owned by the speaker's pod (so it goes with the pod), with
`status.{node, serviceName, serviceNamespace, interfaces[].name}`.

One difference, on purpose: MetalLB leaves `interfaces` empty when the
L2Advertisement names none ("all of them"); metalloid lists the interfaces it
really answers on, which is what an operator reading it wants to know.

Written on change only: `L2StatusWriter.update` does nothing when the wanted
set equals the last one it applied; otherwise it lists the statuses once and
creates, patches and deletes what differs. Like MetalLB's reconciler, the
announcing node also deletes another node's status for the same Service (a
dead speaker cannot delete its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from supervisor.announcing.api import AnnouncerState
from supervisor.config.model import ServiceKey
from supervisor.kubernetes import kinds
from supervisor.kubernetes.client import MERGE_PATCH, ApiError, RawClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]

LABEL_NODE = "metallb.io/node"
LABEL_SERVICE_NAME = "metallb.io/service-name"
LABEL_SERVICE_NAMESPACE = "metallb.io/service-namespace"
PROTOCOL = "layer2"

Wanted = Mapping[ServiceKey, tuple[str, ...]]


def wanted_statuses(states: Iterable[AnnouncerState]) -> dict[ServiceKey, tuple[str, ...]]:
    """Service → the sorted interfaces this node answers on for it, from the layer 2 announcer's state."""
    found: dict[ServiceKey, set[str]] = {}
    for state in states:
        for announcement in state.announcements:
            if announcement.protocol == PROTOCOL:
                found.setdefault(announcement.service, set()).update(announcement.interfaces)
    return {key: tuple(sorted(names)) for key, names in found.items()}


def status_body(node: str, key: ServiceKey, interfaces: tuple[str, ...]) -> Obj:
    status: Obj = {"node": node, "serviceName": key.name, "serviceNamespace": key.namespace}
    if interfaces:
        status["interfaces"] = [{"name": name} for name in interfaces]
    return status


def _service_of(obj: Mapping[str, Any]) -> ServiceKey | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    name, namespace = labels.get(LABEL_SERVICE_NAME), labels.get(LABEL_SERVICE_NAMESPACE)
    return ServiceKey(namespace=str(namespace), name=str(name)) if name and namespace else None


class L2StatusWriter:
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
        try:
            listed = self.client.request("GET", kinds.SERVICE_L2_STATUS.path(self.namespace))
        except ApiError as exc:
            log.warning("l2status.failed action=list error=%s", exc)
            return False
        ok = True
        mine: dict[ServiceKey, Obj] = {}
        for obj in listed.get("items") or []:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            key = _service_of(obj)
            ours = labels.get(LABEL_NODE) == self.node
            if ours and key in wanted and key not in mine:
                mine[key] = obj
            elif ours or key in wanted:
                # Ours but no longer announced (or a duplicate), or another
                # node's for a Service this node announces now.
                ok = self._delete(obj) and ok
        for key, interfaces in wanted.items():
            want = status_body(self.node, key, interfaces)
            obj = mine.get(key) or self._create(key)
            if obj is None:
                ok = False
            elif obj.get("status") != want:
                ok = self._patch_status(obj, want) and ok
        if ok:
            self._applied = wanted
        return ok

    def _create(self, key: ServiceKey) -> Obj | None:
        meta: Obj = {
            "generateName": "l2-",
            "namespace": self.namespace,
            "labels": {LABEL_NODE: self.node, LABEL_SERVICE_NAME: key.name, LABEL_SERVICE_NAMESPACE: key.namespace},
        }
        pod = self.owner()
        if pod is not None and (pod.get("metadata") or {}).get("uid"):
            pod_meta = pod["metadata"]
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod_meta.get("name"),
                                        "uid": pod_meta["uid"]}]  # fmt: skip
        body = {"apiVersion": kinds.SERVICE_L2_STATUS.api_version, "kind": "ServiceL2Status", "metadata": meta,
                "spec": {}}  # fmt: skip
        try:
            created = self.client.request("POST", kinds.SERVICE_L2_STATUS.path(self.namespace), body=body)
        except ApiError as exc:
            log.warning("l2status.failed action=create service=%s error=%s", key, exc)
            return None
        self.writes += 1
        log.info("l2status.created service=%s name=%s", key, (created.get("metadata") or {}).get("name"))
        return created

    def _patch_status(self, obj: Obj, status: Obj) -> bool:
        name = (obj.get("metadata") or {}).get("name")
        # Merge patch: a list is replaced whole, so fewer interfaces shrink it;
        # null removes the key when there are none.
        body = {"status": {**status, "interfaces": status.get("interfaces")}}
        try:
            self.client.request("PATCH", kinds.SERVICE_L2_STATUS.path(self.namespace, name, "status"), body=body,
                                content_type=MERGE_PATCH)  # fmt: skip
        except ApiError as exc:
            log.warning("l2status.failed action=patch name=%s error=%s", name, exc)
            return False
        self.writes += 1
        log.info("l2status.updated name=%s node=%s service=%s/%s interfaces=%s", name, status["node"],
                 status["serviceNamespace"], status["serviceName"],
                 ",".join(i["name"] for i in status.get("interfaces") or []) or "-")  # fmt: skip
        return True

    def _delete(self, obj: Obj) -> bool:
        name = (obj.get("metadata") or {}).get("name")
        try:
            self.client.request("DELETE", kinds.SERVICE_L2_STATUS.path(self.namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return True
            log.warning("l2status.failed action=delete name=%s error=%s", name, exc)
            return False
        self.writes += 1
        log.info("l2status.deleted name=%s service=%s", name, _service_of(obj))
        return True
