"""The watcher's in-memory copy of the watched objects, per kind.

Kept as dicts shaped like the API's, of only the fields metalloid reads
(`projection`), so a snapshot is what `parse_objects` takes, exactly as the
YAML path does. A version counter tells the emitter that
something changed; `synced` says every kind has been listed at least once, so
nobody allocates against a half-known cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from supervisor.kubernetes.kinds import Kind
from supervisor.kubernetes.projection import project

Obj = dict[str, Any]


def key_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class ObjectCache:
    def __init__(self, kinds: Iterable[Kind]) -> None:
        self._kinds = {k.kind: k for k in kinds}
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {k: {} for k in self._kinds}
        self._listed: set[str] = set()
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self.version = 0

    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list: drop everything known of `kind` (deletions missed during a 410 included)."""
        k = self._kinds[kind]
        fresh = {key_of(o): project(k, o) for o in items}
        with self._lock:
            self._objects[kind] = fresh
            self._listed.add(kind)
            self._bump()

    def apply(self, kind: str, event_type: str, obj: Mapping[str, Any]) -> None:
        k = self._kinds[kind]
        with self._lock:
            if event_type == "DELETED":
                if self._objects[kind].pop(key_of(obj), None) is None:
                    return
            else:
                self._objects[kind][key_of(obj)] = project(k, obj)
            self._bump()

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def objects(self, kind: str) -> list[Obj]:
        with self._lock:
            return list(self._objects[kind].values())

    @property
    def synced(self) -> bool:
        with self._lock:
            return self._listed >= set(self._kinds)

    def _bump(self) -> None:
        self.version += 1
        self.changed.notify_all()
