"""What membership tells the supervisor and the log: views, metrics, alarms.

The worker loop decides; this module says it. It turns the detector's
transitions, the fallback's judgements and the consistency tracker's
mismatches into log events (`membership.peer_dead`, `membership.isolated`,
`membership.fallback`, ...), `MetricUpdate`s, the `MembersChanged` view (with
the time the alive set last changed, for metalloid_failover_seconds) and the
worker's `StatusReport`. It keeps only what de-duplicates the output: the last
view sent, when each alarm was last logged, which fallbacks were announced.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from supervisor.membership.codec import DropReason
from supervisor.membership.consistency import ConsistencyTracker
from supervisor.membership.detector import FailureDetector, Transition
from supervisor.membership.fallback import KUBERNETES_READY, Judgement
from supervisor.messages import (
    FromWorker,
    MemberInfo,
    MembersChanged,
    MetricKind,
    MetricOp,
    MetricUpdate,
    StatusReport,
)
from supervisor.supervising.child import Outbox

log = logging.getLogger(__name__)

M_ALIVE = ("metalloid_members_alive", "Members this node sees alive, itself included.")
M_REJECTED = ("metalloid_heartbeats_rejected_total", "Heartbeat packets dropped, by reason.")
M_DETECTION = (
    "metalloid_failover_detection_seconds",
    "Time from a peer's last heartbeat until this node declared it dead.",
)
M_MISMATCH = (
    "metalloid_assignment_digest_mismatch",
    "1 while a peer's assignment table has differed from this node's for longer than the grace.",
)
M_ISOLATED = (
    "metalloid_membership_isolated",
    "1 while this node has peers but hears none of them (firewalled heartbeat port or partition).",
)
# Expected once per peer after each restart (see detector): not worth a warning.
_QUIET_REASONS = frozenset({DropReason.STALE_ECHO, DropReason.KERNEL})

Mismatch = tuple[tuple[str, tuple[Any, ...]], ...]


class Reporter:
    """Logs, metrics and views of one membership worker, de-duplicated."""

    def __init__(self, outbox: Outbox, *, node_name: str, worker: str, isolated_log_every_seconds: float) -> None:
        self.outbox = outbox
        self.node_name = node_name
        self.worker = worker
        self.isolated_log_every_seconds = isolated_log_every_seconds
        self.last_mismatch: Mismatch = ()
        self.alive: frozenset[str] | None = None  # the alive set last judged
        self.changed_at: float | None = None  # when it last changed (monotonic)
        self._next_isolated_log = -math.inf
        self._fallback_logged: set[str] = set()
        self._vouched_logged: dict[str, bool] = {}

    # -- events ---------------------------------------------------------------------

    def transitions(self, changes: list[Transition]) -> bool:
        """Log the detector's changes (and time deadline deaths); True if there were any."""
        for t in changes:
            if t.alive:
                log.info("membership.peer_alive peer=%s", t.peer)
            else:
                silence = "-" if t.silence_seconds is None else f"{t.silence_seconds:.3f}"
                log.warning("membership.peer_dead peer=%s reason=%s silence_seconds=%s", t.peer, t.reason, silence)
                if t.reason == "deadline" and t.silence_seconds is not None:
                    self.metric(M_DETECTION, MetricKind.HISTOGRAM, MetricOp.OBSERVE, t.silence_seconds)
        return bool(changes)

    def judged(self, judgements: Mapping[str, Judgement], now: float) -> bool:
        """Record who counts as alive; True when that changed since the last call.

        Logs `membership.fallback` the first time each peer is judged by its
        Node's readiness, and every later change of that readiness.
        """
        for peer, j in sorted(judgements.items()):
            if j.basis != KUBERNETES_READY:
                self._vouched_logged.pop(peer, None)
                continue
            if peer not in self._fallback_logged:
                self._fallback_logged.add(peer)
                log.warning(
                    "membership.fallback peer=%s basis=%s alive=%s note=never heard since start; counts as alive "
                    "while its Node is Ready, so it fails over at Kubernetes' speed, not membership's",
                    peer, KUBERNETES_READY, j.alive,
                )  # fmt: skip
            elif self._vouched_logged.get(peer, j.alive) != j.alive:
                log.warning("membership.fallback_changed peer=%s basis=%s alive=%s", peer, KUBERNETES_READY, j.alive)
            self._vouched_logged[peer] = j.alive
        alive = frozenset([self.node_name, *(p for p, j in judgements.items() if j.alive)])
        if alive == self.alive:
            return False
        if self.alive is not None:
            self.changed_at = now
        self.alive = alive
        return True

    def drops(self, counts: Mapping[DropReason, int], last: Mapping[DropReason, tuple[Any, str]]) -> None:
        """One second's dropped datagrams: one counter increment and one log line per reason."""
        for reason, count in sorted(counts.items(), key=lambda item: item[0].value):
            self.metric(M_REJECTED, MetricKind.COUNTER, MetricOp.INC, float(count), (("reason", reason.value),))
            source, detail = last.get(reason, (None, ""))
            log.log(
                logging.INFO if reason in _QUIET_REASONS else logging.WARNING,
                "membership.rejected reason=%s count=%d last_from=%s detail=%s",
                reason.value, count, source, detail or "-",
            )  # fmt: skip

    def mismatch(self, mismatch: Mismatch) -> bool:
        """Report a changed digest mismatch list; True if it changed."""
        if mismatch == self.last_mismatch:
            return False
        before = {peer for peer, _ in self.last_mismatch}
        now_set = {peer for peer, _ in mismatch}
        for peer, services in mismatch:
            log.warning(
                "membership.digest_mismatch peer=%s services=%s note=the nodes disagree on assignments; "
                "compare `metalloid plan` and the config files on both",
                peer,
                ",".join(str(s) for s in services) or "-",
            )
            self.metric(M_MISMATCH, MetricKind.GAUGE, MetricOp.SET, 1.0, (("peer", peer),))
        for peer in sorted(before - now_set):
            log.info("membership.digest_match peer=%s", peer)
            self.metric(M_MISMATCH, MetricKind.GAUGE, MetricOp.SET, 0.0, (("peer", peer),))
        self.last_mismatch = mismatch
        return True

    def isolation(self, detector: FailureDetector, now: float, *, port: int | None, kubernetes: bool) -> None:
        """While no peer is heard: an error line every `isolated_log_every_seconds`."""
        if not detector.isolated():
            self._next_isolated_log = now
            return
        if now < self._next_isolated_log:
            return
        never = [p for p in sorted(detector.peers()) if not detector.ever_heard(p)]
        consequence = (
            "peers never heard count as alive while their Node is Ready (failover at Kubernetes' speed)"
            if kubernetes
            else "this node announces alone (split brain)"
        )
        log.error(
            "membership.isolated node=%s peers=%d never_heard=%s note=this node hears no peer; %s; if the peers "
            "are up, UDP port %s is probably firewalled (see docs/failover.md)",
            self.node_name, len(detector.peers()), ",".join(never) or "-", consequence,
            "?" if port is None else port,
        )  # fmt: skip
        self._next_isolated_log = now + self.isolated_log_every_seconds

    # -- views ----------------------------------------------------------------------

    def report(
        self,
        now: float,
        detector: FailureDetector,
        consistency: ConsistencyTracker,
        judgements: Mapping[str, Judgement],
        status: Mapping[str, Any],
    ) -> None:
        """Send MembersChanged, the gauges and the StatusReport (`status`: the worker's own fields)."""
        members = [
            MemberInfo(name=self.node_name, alive=True, last_heard_seconds=0.0, digest=consistency.digest.hex())
        ]
        for peer, state in sorted(detector.peers().items()):
            age = None if state.heard_at is None else round(now - state.heard_at, 3)
            j = judgements[peer]
            members.append(
                MemberInfo(
                    name=peer,
                    alive=j.alive,
                    last_heard_seconds=age,
                    digest=consistency.peer_digest(peer).hex(),
                    basis=j.basis,
                )
            )
        alive = self.alive if self.alive is not None else frozenset({self.node_name})
        self.put(
            MembersChanged(
                alive=alive, members=tuple(members), digest_mismatch=self.last_mismatch, changed_at=self.changed_at
            )
        )
        isolated = detector.isolated()
        self.metric(M_ALIVE, MetricKind.GAUGE, MetricOp.SET, float(len(alive)))
        self.metric(M_ISOLATED, MetricKind.GAUGE, MetricOp.SET, 1.0 if isolated else 0.0)
        payload = {
            **status,
            "isolated": isolated,
            "stalls": detector.stalls,
            "members": [
                {
                    "name": m.name,
                    "alive": m.alive,
                    "last_heard_seconds": m.last_heard_seconds,
                    "digest": m.digest,
                    "basis": m.basis,
                }
                for m in members
            ],
            "digest_mismatch": [
                {"peer": peer, "services": [str(s) for s in services]} for peer, services in self.last_mismatch
            ],
        }
        self.put(StatusReport(worker=self.worker, payload=payload))

    def metric(
        self,
        metric: tuple[str, str],
        kind: MetricKind,
        op: MetricOp,
        value: float,
        labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.put(MetricUpdate(name=metric[0], kind=kind, documentation=metric[1], labels=labels, op=op, value=value))

    def put(self, msg: FromWorker) -> None:
        self.outbox.put(msg)
