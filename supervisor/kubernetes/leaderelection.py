"""Two controller replicas, one writer: a small loop on a coordination.k8s.io/v1 Lease.

Not `kubernetes.leaderelection`, which calls `sys.exit` on a bad config
(FACTS.md). The rules are client-go's:

- Another holder's lease is expired when its record has not changed for
  `lease_duration` as measured on *our* clock since we first saw that record
  (no trust in other machines' wall clocks).
- Taking or renewing is an update with the record's resourceVersion, so two
  candidates racing get one 200 and one 409.
- We consider ourselves leader only until `renew_deadline` after our last
  successful renewal, and `renew_deadline < lease_duration`: a leader cut off
  from the API stops writing before anyone else may take over.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.kubernetes import kinds
from supervisor.kubernetes.client import ApiError, RawClient

log = logging.getLogger(__name__)


def _micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTimings:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "lease timings need 0 < retry_period < renew_deadline < lease_duration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.lease_duration})"
            )


class LeaderElector:
    def __init__(
        self,
        client: RawClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings = LeaseTimings(),
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] = lambda leader: None,
    ) -> None:
        self.client = client
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timings = timings
        self.clock = clock
        self.on_change = on_change
        self._valid_until = float("-inf")
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._was_leader = False
        self.stopping = threading.Event()
        # False simulates a crash in tests: the lease is left to expire.
        self.release_on_stop = True

    def is_leader(self) -> bool:
        return self.clock() < self._valid_until

    def _lease_body(self, current: dict[str, Any] | None) -> dict[str, Any]:
        spec = dict((current or {}).get("spec") or {})
        now = _micro_time()
        transitions = int(spec.get("leaseTransitions") or 0)
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            if spec.get("holderIdentity"):
                transitions += 1
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.timings.lease_duration)),
            renewTime=now,
            leaseTransitions=transitions,
        )
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if current is not None:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": kinds.LEASE.api_version, "kind": "Lease", "metadata": meta, "spec": spec}

    def step(self) -> bool:
        """One attempt to acquire or renew; returns whether we lead afterwards."""
        started = self.clock()
        try:
            current: dict[str, Any] | None = self.client.request("GET", kinds.LEASE.path(self.namespace, self.name))
        except ApiError as exc:
            if exc.code != 404:
                log.warning("lease.read_failed lease=%s/%s error=%s", self.namespace, self.name, exc)
                return self._settle()
            current = None
        if current is not None:
            spec = current.get("spec") or {}
            holder = spec.get("holderIdentity")
            record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            if record != self._observed:
                self._observed, self._observed_at = record, started
            duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_duration)
            held_by_other = bool(holder) and holder != self.identity
            if held_by_other and started < self._observed_at + duration:
                return self._settle()
        try:
            if current is None:
                self.client.request("POST", kinds.LEASE.path(self.namespace), body=self._lease_body(None))
            else:
                self.client.request("PUT", kinds.LEASE.path(self.namespace, self.name), body=self._lease_body(current))
        except ApiError as exc:
            if exc.code not in (409,):
                log.warning("lease.write_failed lease=%s/%s error=%s", self.namespace, self.name, exc)
            return self._settle()
        # Measured from before the GET: the lease may have been renewed that early.
        self._valid_until = started + self.timings.renew_deadline
        return self._settle()

    def release(self) -> None:
        """Graceful stop: hand the lease over at once instead of after it expires."""
        if not self.is_leader():
            return
        self._valid_until = float("-inf")
        try:
            current = self.client.request("GET", kinds.LEASE.path(self.namespace, self.name))
            spec = dict(current.get("spec") or {})
            if spec.get("holderIdentity") == self.identity:
                spec.update(holderIdentity=None, leaseDurationSeconds=1)
                current["spec"] = spec
                self.client.request("PUT", kinds.LEASE.path(self.namespace, self.name), body=current)
        except ApiError as exc:
            log.warning("lease.release_failed error=%s", exc)
        self._settle()

    def _settle(self) -> bool:
        leader = self.is_leader()
        if leader != self._was_leader:
            self._was_leader = leader
            log.info(
                "lease.%s lease=%s/%s identity=%s",
                "acquired" if leader else "lost",
                self.namespace,
                self.name,
                self.identity,
            )
            self.on_change(leader)
        return leader

    def run(self) -> None:
        """Loop until `stopping` is set (then release)."""
        while not self.stopping.is_set():
            self.step()
            self.stopping.wait(self.timings.retry_period)
        if self.release_on_stop:
            self.release()
        else:
            self._valid_until = float("-inf")
            self._settle()
