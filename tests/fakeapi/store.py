"""The fake API server's state: objects, one resourceVersion counter, event history.

One global counter like etcd's revision: every write takes the next number,
lists report the current one, and watches replay the bounded history after a
given number (older than the history → 410 Gone, as after compaction).
All methods are thread-safe; watchers block on a condition.
"""

from __future__ import annotations

import bisect
import copy
import datetime
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakeapi.resources import Resource

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" for cluster), name


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(frozen=True, slots=True)
class WatchEvent:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    group: str
    plural: str
    obj: Obj
    old: Obj | None


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, *, history: int = 1000) -> None:
        self._objects: dict[Key, Obj] = {}
        self._events: list[WatchEvent] = []
        self._history = history
        self._compacted = 0  # every event with rv <= this may be lost
        self._rv = 0
        self.cond = threading.Condition()

    # -- reads --------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self.cond:
            return self._rv

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        with self.cond:
            obj = self._objects.get(self._key(res, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found')
            return copy.deepcopy(obj)

    def list(self, res: Resource, namespace: str | None) -> tuple[list[Obj], int]:
        with self.cond:
            items = [
                copy.deepcopy(o)
                for (g, p, ns, _), o in sorted(self._objects.items())
                if g == res.group and p == res.plural and (namespace is None or ns == namespace)
            ]
            return items, self._rv

    def events_after(self, rv: int) -> list[WatchEvent]:
        """Events newer than `rv`; raises 410 when some of them were compacted away."""
        with self.cond:
            if rv < self._compacted:
                raise ApiError(410, "Expired", f"too old resource version: {rv} ({self._compacted + 1})")
            start = bisect.bisect_right(self._events, rv, key=lambda e: e.rv)
            return self._events[start:]

    # -- writes -------------------------------------------------------------------------------
    def create(self, res: Resource, namespace: str | None, obj: Obj) -> Obj:
        with self.cond:
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name")
            if not name:
                raise ApiError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
            key = self._key(res, namespace, name)
            if key in self._objects:
                raise ApiError(409, "AlreadyExists", f'{res.plural}.{res.group or "core"} "{name}" already exists')
            if res.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_text(), generation=1)
            if res.status:
                # Status is written by controllers through /status, never on create.
                obj.pop("status", None)
            return self._commit(res, key, obj, "ADDED", None)

    def update(self, res: Resource, namespace: str | None, name: str, obj: Obj, *, subresource: str | None) -> Obj:
        with self.cond:
            key = self._key(res, namespace, name)
            current = self._objects.get(key)
            if current is None:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found')
            wanted_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if wanted_rv not in (None, "") and str(wanted_rv) != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.plural} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            new = copy.deepcopy(current)
            if subresource == "status":
                if "status" in obj:
                    new["status"] = copy.deepcopy(obj["status"])
                else:
                    new.pop("status", None)
                if res.group == "" and res.plural == "services":
                    # The Service status strategy resets only the spec
                    # (pkg/registry/core/service/strategy.go): labels and
                    # annotations written through /status are kept. Custom
                    # resources keep nothing but status.
                    meta = obj.get("metadata") or {}
                    for field in ("labels", "annotations"):
                        if field in meta:
                            new["metadata"][field] = copy.deepcopy(meta[field])
            else:
                new = copy.deepcopy(obj)
                meta = new.setdefault("metadata", {})
                for field in ("uid", "creationTimestamp", "namespace", "name"):
                    if field in current["metadata"]:
                        meta[field] = current["metadata"][field]
                meta["generation"] = current["metadata"].get("generation", 1)
                if res.status:
                    new.pop("status", None)
                    if "status" in current:
                        new["status"] = current["status"]
                if new.get("spec") != current.get("spec"):
                    meta["generation"] += 1
            if _without_rv(new) == _without_rv(current):
                return copy.deepcopy(current)  # a no-op update is no write (no new resourceVersion)
            return self._commit(res, key, new, "MODIFIED", current)

    def delete(self, res: Resource, namespace: str | None, name: str) -> Obj:
        with self.cond:
            key = self._key(res, namespace, name)
            current = self._objects.pop(key, None)
            if current is None:
                raise ApiError(404, "NotFound", f'{res.plural}.{res.group or "core"} "{name}" not found')
            gone = copy.deepcopy(current)
            self._rv += 1
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._record(WatchEvent(self._rv, "DELETED", res.group, res.plural, gone, current))
            return copy.deepcopy(gone)

    def compact(self) -> None:
        """Forget the whole history: every watch from an older version gets 410."""
        with self.cond:
            self._compacted = self._rv
            self._events.clear()

    # -- internals ----------------------------------------------------------------------------
    def _key(self, res: Resource, namespace: str | None, name: str) -> Key:
        return (res.group, res.plural, (namespace or "") if res.namespaced else "", name)

    def _commit(self, res: Resource, key: Key, obj: Obj, kind: str, old: Obj | None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[key] = obj
        self._record(WatchEvent(self._rv, kind, res.group, res.plural, copy.deepcopy(obj), old))
        return copy.deepcopy(obj)

    def _record(self, event: WatchEvent) -> None:
        self._events.append(event)
        if len(self._events) > self._history:
            dropped = len(self._events) - self._history
            self._compacted = self._events[dropped - 1].rv
            del self._events[:dropped]
        self.cond.notify_all()


def _without_rv(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}
