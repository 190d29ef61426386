"""Kubernetes Events with MetalLB's reasons, emitted on change only.

MetalLB emits an Event on every reconcile, so `kubectl describe svc` fills up
with copies. Here an Event is written only when the (reason, message) of an
object differs from the last one this process reported for it. Across
restarts the Event's name is a hash of (object uid, reason, message): a
restarted controller that would repeat itself gets 409 AlreadyExists and
stays quiet; an old message coming back after a different one bumps the
existing Event's count, as the kubelet's recorder does.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from supervisor.kubernetes import kinds
from supervisor.kubernetes.client import MERGE_PATCH, ApiError, RawClient

log = logging.getLogger(__name__)

# MetalLB's reasons (controller/service.go, controller/main.go, speaker/main.go,
# speaker/layer2_controller.go).
IP_ALLOCATED = "IPAllocated"
ALLOCATION_FAILED = "AllocationFailed"
LOAD_BALANCER_FAILED = "LoadBalancerFailed"
ADDITIONAL_ASSIGN_FAILED = "AdditionalAssignFailed"
CLEAR_ASSIGNMENT = "ClearAssignment"
DEPRECATED_ANNOTATION = "deprecatedAnnotation"
NODE_ASSIGNED = "nodeAssigned"
ANNOUNCE_FAILED = "announceFailed"
# metalloid's own: MetalLB reports these in logs only.
INVALID_CONFIGURATION = "InvalidConfiguration"
CONFIGURATION_WARNING = "ConfigurationWarning"

NORMAL, WARNING = "Normal", "Warning"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_quote(text: str) -> str:
    """Go's %q of a plain string (MetalLB's Event messages quote with it)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'



def event_name(obj: Mapping[str, Any], reason: str, message: str) -> str:
    meta = obj.get("metadata") or {}
    digest = hashlib.sha256(f"{meta.get('uid', '')}\0{reason}\0{message}".encode()).hexdigest()[:16]
    return f"{meta.get('name', 'unknown')}.{digest}"


class EventRecorder:
    def __init__(
        self, client: RawClient, *, component: str, host: str = "", on_write: Callable[[bool], None] | None = None
    ):
        self.client = client
        self.component = component
        self.host = host
        # (kind, namespace, name) or, for a `slot`, (kind, namespace, name, slot).
        self._last: dict[tuple[str, ...], tuple[str, str]] = {}
        self._on_write = on_write or (lambda ok: None)

    def record(
        self, obj: Mapping[str, Any], kind: kinds.Kind, event_type: str, reason: str, message: str, *, slot: str = ""
    ) -> bool:
        """Write the Event unless it repeats the last one for `obj`; True when one was written.

        `slot` keeps a standing remark (a deprecated annotation) apart from the
        object's main story: sharing one "last Event" they would take turns
        and each reconcile would write both again.
        """
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        who: tuple[str, ...] = (kind.kind, namespace, str(meta.get("name")))
        if slot:
            who += (slot,)
        if self._last.get(who) == (reason, message):
            return False
        known_before = who in self._last
        self._last[who] = (reason, message)
        name = event_name(obj, reason, message)
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": kind.api_version,
                "kind": kind.kind,
                "namespace": namespace if kind.namespaced else None,
                "name": meta.get("name"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": self.component, "host": self.host or None},
            "reportingComponent": self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.client.request("POST", kinds.EVENT.path(namespace), body=body)
        except ApiError as exc:
            if exc.code != 409:
                self._last.pop(who, None)  # not reported: try again next time
                self._on_write(False)
                log.warning("event.failed object=%s/%s reason=%s error=%s", namespace, who[2], reason, exc)
                return False
            if not known_before:
                return False  # a restart repeating what it said before: stay quiet
            try:
                current = self.client.request("GET", kinds.EVENT.path(namespace, name))
                patch = {"count": int(current.get("count") or 1) + 1, "lastTimestamp": now}
                self.client.request("PATCH", kinds.EVENT.path(namespace, name), body=patch, content_type=MERGE_PATCH)
            except ApiError as again:
                log.warning("event.failed object=%s/%s reason=%s error=%s", namespace, who[2], reason, again)
                return False
        self._on_write(True)
        log.info("event.recorded object=%s/%s reason=%s message=%s", namespace, who[2], reason, message)
        return True

    def reported(self, kind: str, namespace: str, name: str, *, slot: str = "") -> bool:
        """Whether the last `record` for this object stands (written, or already there); False after a failure."""
        return (kind, namespace, name, *((slot,) if slot else ())) in self._last

    def forget(self, kind: str, namespace: str, name: str, *, slot: str = "") -> None:
        self._last.pop((kind, namespace, name, *((slot,) if slot else ())), None)

    def end(self, kind: str, namespace: str, name: str, *, slot: str = "") -> None:
        """The last Event of this object (slot) no longer holds: the same one again is news, and bumps its count.

        Unlike `forget`, which takes a repeat after it for a restart's and stays quiet.
        """
        who = (kind, namespace, name, *((slot,) if slot else ()))
        if who in self._last:
            self._last[who] = ("", "")

    def retain(self, kind: str, present: set[tuple[str, str]]) -> None:
        """Forget every `kind` object not in `present` ((namespace, name)): deleted ones.

        Keeps the memory bounded by the live objects, and a Service deleted and
        created again under its name gets its Events again.
        """
        for who in [w for w in self._last if w[0] == kind and (w[1], w[2]) not in present]:
            del self._last[who]
