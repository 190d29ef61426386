"""The controller's output: Service status, the pool annotation, pool status, Events.

Takes an `AllocationResult` and the watcher's cached objects and writes only
what differs: `status.loadBalancer.ingress` through the status subresource
(with the object's resourceVersion as a precondition; a 409 re-reads and tries
again), the `metallb.io/ip-allocated-from-pool` annotation on the Service,
IPAddressPool `status.{assigned,available}IPv{4,6}`. A Service that stops
being ours (type changed, another loadBalancerClass) and still carries our
annotation is cleared. Services of another class without our annotation are
never touched: another load balancer owns them.

Events carry MetalLB's reasons and are written on change only (`events`).
Every write first asks `may_write()` (the lease): a controller that is not the
leader, or no longer sure it is, writes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.allocating.results import AllocationResult, PoolCounts
from supervisor.config import lbclass
from supervisor.config.diagnostics import Diagnostic
from supervisor.config.model import ServiceKey
from supervisor.kubernetes import events, families, kinds
from supervisor.kubernetes.client import MERGE_PATCH, ApiError, RawClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]

POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
LEGACY_PREFIX = "metallb.universe.tf/"
UPDATES = "metallb_k8s_client_updates_total"
UPDATE_ERRORS = "metallb_k8s_client_update_errors_total"
CONFLICT_RETRIES = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Desired:
    """What one Service should show. `pending` is the allocator's reason when it has no IP."""

    ips: tuple[str, ...]
    pool: str | None
    pending: str | None = None
    released: bool = False  # not ours any more: clear what we wrote
    # The Service's spec is invalid but it keeps the IP it held (MetalLB's LoadBalancerFailed).
    problem: str | None = None


def ingress_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(str(i.get("ip")) for i in ingress if isinstance(i, dict) and i.get("ip"))


def annotation_of(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(POOL_ANNOTATION)
    return str(value) if value is not None else None


def key_of(obj: Mapping[str, Any]) -> ServiceKey:
    meta = obj.get("metadata") or {}
    return ServiceKey(namespace=str(meta.get("namespace") or "default"), name=str(meta.get("name")))


def desired_for(obj: Mapping[str, Any], result: AllocationResult, *, lb_class: str | None) -> Desired | None:
    """What `obj` should show after `result`; None when it is not ours to touch."""
    key = key_of(obj)
    if lbclass.is_ours_object(obj, lb_class):
        if key in result.assignments:
            found = result.assignments[key]
            return Desired(ips=tuple(str(ip) for ip in found.ips), pool=found.pool, problem=result.problems.get(key))
        if key in result.pending:
            return Desired(ips=(), pool=None, pending=result.pending[key])
        return None  # the result predates this Service: the next one covers it
    if annotation_of(obj) is not None:
        return Desired(ips=(), pool=None, released=True)
    return None


def go_ips(ips: Iterable[str]) -> str:
    """Go's %q of a []net.IP, as MetalLB's Event messages print it: ["10.0.0.1" "fd00::1"]."""
    return "[" + " ".join(events.go_quote(ip) for ip in ips) + "]"


def missing_family(obj: Mapping[str, Any], ips: Iterable[str]) -> str | None:
    """The family a PreferDualStack Service of two families still lacks, None when it lacks none."""
    spec = obj.get("spec") or {}
    families = spec.get("ipFamilies") or []
    held = {"IPv6" if ":" in ip else "IPv4" for ip in ips}
    if spec.get("ipFamilyPolicy") != "PreferDualStack" or len(families) < 2 or not held:
        return None
    return next((f for f in families if f not in held), None)


def additional_ip(obj: Mapping[str, Any], had: Iterable[str], ips: Iterable[str]) -> str | None:
    """The one IP a PreferDualStack Service gained beside the one it kept, None otherwise."""
    before, after = set(had), set(ips)
    gained = after - before
    if (obj.get("spec") or {}).get("ipFamilyPolicy") != "PreferDualStack" or len(before) != 1 or not before < after:
        return None
    return next(iter(gained)) if len(gained) == 1 else None


def pool_status(counts: PoolCounts) -> dict[str, int]:
    return {
        "assignedIPv4": counts.assigned_v4,
        "assignedIPv6": counts.assigned_v6,
        "availableIPv4": counts.available_v4,
        "availableIPv6": counts.available_v6,
    }


class StatusWriter:
    def __init__(
        self,
        client: RawClient,
        *,
        lb_class: str | None = None,
        may_write: Callable[[], bool] = lambda: True,
        metric: Callable[[str, float], None] = lambda name, value: None,
        recorder: events.EventRecorder | None = None,
    ) -> None:
        self.client = client
        self.lb_class = lb_class
        self.may_write = may_write
        self.metric = metric
        self.recorder = recorder or events.EventRecorder(client, component="metallb-controller")
        self.updates = 0
        self.errors = 0

    # -- services -----------------------------------------------------------------------------
    def apply(self, result: AllocationResult, services: Iterable[Obj], pools: Iterable[Obj] = ()) -> int:
        """Reconcile every Service and pool with `result`; returns the number of writes."""
        before = self.updates
        seen: set[tuple[str, str]] = set()
        for obj in services:
            if not self.may_write():
                break
            key = key_of(obj)
            seen.add((key.namespace, key.name))
            want = desired_for(obj, result, lb_class=self.lb_class)
            if want is not None:
                self._service(obj, want)
        else:
            self.recorder.retain("Service", seen)
        for pool in pools:
            if not self.may_write():
                break
            self._pool(pool, result)
        return self.updates - before

    def _service(self, obj: Obj, want: Desired) -> None:
        key = key_of(obj)
        self._deprecations(obj)
        had = ingress_of(obj)
        # One write per change: the pool annotation goes with the IPs through
        # the status subresource (its strategy resets only the spec, as
        # MetalLB relies on), so the controller needs no write access to
        # Services themselves.
        if set(ingress_of(obj)) != set(want.ips) or annotation_of(obj) != want.pool:
            obj = self._write_ingress(obj, want) or obj
        changed = set(had) != set(want.ips)
        # MetalLB's texts (controller/service.go); Go's %q of a []net.IP is
        # ["a" "b"], of the key "ns/name".
        if changed and had and not want.released and set(had) - set(want.ips):
            lost = go_ips(sorted(set(had) - set(want.ips)))
            self._event(obj, events.NORMAL, events.CLEAR_ASSIGNMENT,
                        f"current IP for {events.go_quote(str(key))} not allowed by config, will attempt for new IP "
                        f"assignment: {lost} no longer in a pool this Service may use")  # fmt: skip
        elif changed and had and want.released:
            self._event(obj, events.NORMAL, events.CLEAR_ASSIGNMENT,
                        f"service is no longer a LoadBalancer of this class, clearing {go_ips(had)}")
        said = dict(families.family_events(obj, had)) if not want.released else {}
        for reason in families.REASONS:
            if reason in said:
                self._event(obj, events.WARNING, reason, said[reason], slot=reason)
            else:
                self.recorder.forget("Service", key.namespace, key.name, slot=reason)
        if want.pending is not None:
            if families.NOT_ENOUGH_CLUSTER_IPS not in said:  # MetalLB says only that for such a Service
                self._event(obj, events.WARNING, events.ALLOCATION_FAILED,
                            f"Failed to allocate IP for {events.go_quote(str(key))}: {want.pending}")  # fmt: skip
        elif want.problem is not None:
            # MetalLB's words when a Service holding an IP asks for invalid ones.
            self._event(obj, events.WARNING, events.LOAD_BALANCER_FAILED,
                        f"invalid requested loadbalancer IPs: {want.problem}; keeping {json.dumps(list(want.ips))}")
        elif changed and want.ips and (added := additional_ip(obj, had, want.ips)) is not None:
            # PreferDualStack's second family joining the IP it kept (MetalLB: "Assigned additional IP %q").
            self._event(obj, events.NORMAL, events.IP_ALLOCATED, f"Assigned additional IP {events.go_quote(added)}")
        elif changed and want.ips:
            self._event(obj, events.NORMAL, events.IP_ALLOCATED, f"Assigned IP {go_ips(want.ips)}")
        missing = missing_family(obj, want.ips)
        if missing is not None and want.pool is not None:
            self._event(obj, events.NORMAL, events.ADDITIONAL_ASSIGN_FAILED,
                        f"cannot assign additional IP in PreferDualStack: no {missing} address available in pool "
                        f"{want.pool}", slot="additional")  # fmt: skip
        else:
            self.recorder.forget("Service", key.namespace, key.name, slot="additional")

    def _write_ingress(self, obj: Obj, want: Desired) -> Obj | None:
        key = key_of(obj)
        path = kinds.SERVICE.path(key.namespace, key.name, "status")
        for _ in range(CONFLICT_RETRIES):
            body = {
                "metadata": {
                    "resourceVersion": (obj.get("metadata") or {}).get("resourceVersion"),
                    "annotations": {POOL_ANNOTATION: want.pool},
                },
                "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in want.ips] if want.ips else None}},
            }
            if not self.may_write():
                return None
            try:
                written = self.client.request("PATCH", path, body=body, content_type=MERGE_PATCH)
            except ApiError as exc:
                if exc.code != 409:
                    self._failed(f"service {key} status", exc)
                    return None
                log.info("status.conflict service=%s action=reread", key)
                try:
                    obj = self.client.request("GET", kinds.SERVICE.path(key.namespace, key.name))
                except ApiError as again:
                    self._failed(f"service {key} status", again)
                    return None
                if set(ingress_of(obj)) == set(want.ips) and annotation_of(obj) == want.pool:
                    return obj
                continue
            self._ok()
            log.info("status.written service=%s ips=%s", key, ",".join(want.ips) or "-")
            return written
        self._failed(f"service {key} status", ApiError(409, "Conflict", "still conflicting after re-reads"))
        return None

    def _deprecations(self, obj: Obj) -> None:
        for name in sorted((obj.get("metadata") or {}).get("annotations") or {}):
            if name.startswith(LEGACY_PREFIX):
                self._event(obj, events.WARNING, events.DEPRECATED_ANNOTATION,
                            f"Service uses deprecated annotation {name}", slot=name)  # fmt: skip

    # -- pools --------------------------------------------------------------------------------
    def _pool(self, pool: Obj, result: AllocationResult) -> None:
        name = str((pool.get("metadata") or {}).get("name"))
        counts = next((c for c in result.pools if c.pool == name), None)
        if counts is None:
            return
        want = pool_status(counts)
        have = pool.get("status") or {}
        if all(have.get(k) == v for k, v in want.items()):
            return
        namespace = (pool.get("metadata") or {}).get("namespace")
        path = kinds.IP_ADDRESS_POOL.path(namespace, name, "status")
        if self._write("PATCH", path, {"status": want}, f"ipaddresspool {name}") is not None:
            log.info("pool.status pool=%s %s", name, " ".join(f"{k}={v}" for k, v in want.items()))

    # -- invalid configuration ----------------------------------------------------------------
    def report_invalid(self, diagnostics: Iterable[Diagnostic], objects: Iterable[Obj]) -> None:
        """A Warning Event on each offending object, and a condition on pools that have one."""
        by_name = {(o.get("kind"), (o.get("metadata") or {}).get("name")): o for o in objects}
        for diag in diagnostics:
            if not diag.is_error or not self.may_write():
                continue
            obj = by_name.get((diag.kind, diag.name))
            if obj is None:
                continue
            kind = next((k for k in kinds.WATCHED if k.kind == diag.kind), kinds.IP_ADDRESS_POOL)
            self._event(obj, events.WARNING, events.INVALID_CONFIGURATION, diag.message, kind=kind)
            if kind is kinds.IP_ADDRESS_POOL:
                condition = {
                    "type": "Valid",
                    "status": "False",
                    "reason": events.INVALID_CONFIGURATION,
                    "message": diag.message,
                }
                conditions = (obj.get("status") or {}).get("conditions") or []
                if condition not in [{k: c.get(k) for k in condition} for c in conditions]:
                    meta = obj.get("metadata") or {}
                    path = kinds.IP_ADDRESS_POOL.path(meta.get("namespace"), meta.get("name"), "status")
                    self._write(
                        "PATCH", path, {"status": {"conditions": [condition]}}, f"ipaddresspool {meta.get('name')}"
                    )

    def report_warnings(self, diagnostics: Iterable[Diagnostic], objects: Iterable[Obj]) -> None:
        """A Warning Event (ConfigurationWarning) on each metallb.io object a warning is about, on change only.

        Chiefly the MetalLB fields metalloid keeps but does not act on: the
        object is accepted, and its owner should know what is ignored.
        """
        by_name = {(o.get("kind"), (o.get("metadata") or {}).get("name")): o for o in objects}
        wanted: dict[tuple[str, str], list[str]] = {}
        for diag in diagnostics:
            if not diag.is_error and diag.kind in kinds.CONFIG_KINDS:
                wanted.setdefault((diag.kind, diag.name), []).append(diag.message)
        for (kind_name, name), messages in sorted(wanted.items()):
            obj = by_name.get((kind_name, name))
            if obj is None or not self.may_write():
                continue
            kind = next(k for k in kinds.WATCHED if k.kind == kind_name)
            self._event(obj, events.WARNING, events.CONFIGURATION_WARNING, "; ".join(messages), kind=kind,
                        slot="warnings")  # fmt: skip

    # -- plumbing -----------------------------------------------------------------------------
    def _event(
        self, obj: Obj, event_type: str, reason: str, message: str, *, kind: kinds.Kind = kinds.SERVICE, slot: str = ""
    ) -> None:
        if self.may_write():
            self.recorder.record(obj, kind, event_type, reason, message, slot=slot)

    def _write(self, method: str, path: str, body: Obj, what: str) -> Obj | None:
        if not self.may_write():
            return None
        try:
            written = self.client.request(method, path, body=body, content_type=MERGE_PATCH)
        except ApiError as exc:
            self._failed(what, exc)
            return None
        self._ok()
        return written

    def _ok(self) -> None:
        self.updates += 1
        self.metric(UPDATES, 1.0)

    def _failed(self, what: str, exc: ApiError) -> None:
        self.errors += 1
        self.metric(UPDATE_ERRORS, 1.0)
        log.warning("status.failed object=%s error=%s", what, exc)
