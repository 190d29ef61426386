"""The membership worker: the loop that ties the socket, the detector and the reports together.

`run(settings, inbox, outbox)` owns one UDP socket (`transport`). Every
`interval` it sends each configured peer a heartbeat; it receives theirs,
feeds the pure `FailureDetector` and `ConsistencyTracker`, judges who counts
as alive (`fallback`: heartbeats, or in Kubernetes mode the Node's readiness
for a peer never heard), and reports through `reporting`: `MembersChanged`
when that changes (and every second, for the last-heard ages),
`WorkerHeartbeat` every 0.5 s, `MetricUpdate`s and a `StatusReport`. On
`Control.STOP` it tells every peer LEAVING, so they take over at once, and
returns.

Each loop turn first sends the heartbeats that are due (a flood on our port
must not delay them), then reads the socket for one bounded turn
(`receiving`: at most 512 datagrams or 5 ms; a datagram claiming a peer
heard in this run costs an HMAC only with that peer's next token,
`receiving.Lanes`), then asks the detector about
deadlines, telling it how much CPU the turn used so our own receive work is
never mistaken for a stall. Heartbeats that queued up while this process was
not scheduled count before any deadline is judged. Dropped datagrams are
counted in memory and reported once a second.

What it does not do: decide who announces (election, in the announcers) or
watch Kubernetes (the watcher feeds Node objects through ConfigLoaded).
"""

from __future__ import annotations

import logging
import os
import select
import time
from dataclasses import dataclass, field, replace
from typing import Any

from supervisor.config.model import Config
from supervisor.membership.codec import DropReason, Heartbeat, HeartbeatReader, HeartbeatWriter, PacketType
from supervisor.membership.consistency import DEFAULT_GRACE_SECONDS, ConsistencyTracker, table_lines
from supervisor.membership.detector import DetectorSettings, FailureDetector
from supervisor.membership.fallback import Judgement, judge_all
from supervisor.membership.inbox import InboxReader
from supervisor.membership.keys import KeyFileError, key_problem, read_key_file
from supervisor.membership.receiving import DropCounter, Lanes, Screen, TurnBudget, receive_gap, receive_turn
from supervisor.membership.reporting import Reporter
from supervisor.membership.transport import Transport
from supervisor.messages import AllocationDone, ConfigLoaded, Control, WorkerFailed, WorkerHeartbeat
from supervisor.roles import Mode
from supervisor.supervising.child import Inbox, Outbox
from supervisor.supervising.settings import MembershipSettings

__all__ = ["KeyFileError", "MembershipWorkerSettings", "key_problem", "read_key_file", "run", "settings_from"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipWorkerSettings:
    """What the membership worker needs beyond the config (fixed for its life)."""

    node_name: str
    key: bytes | None = None
    # Run without a key even with peers (heartbeats carry no MAC). Also set
    # by `settings.membership.insecure` in the config.
    insecure: bool = False
    # Kubernetes mode: a peer never heard since start counts as alive while
    # its Node is Ready (fallback.py). Standalone has no such second signal.
    kubernetes: bool = False
    # None: the wall clock at start, in ns (must grow across restarts; see codec).
    incarnation: int | None = None
    # Per-node UDP port overrides by node name, for several nodes on one host (tests).
    ports: tuple[tuple[str, int], ...] = ()
    # None: this node's first InternalIP, or 0.0.0.0 when the config has none.
    bind_address: str | None = None
    consistency_grace_seconds: float = DEFAULT_GRACE_SECONDS
    report_every_seconds: float = 1.0
    drops_every_seconds: float = 1.0
    receive_budget: TurnBudget = field(default_factory=TurnBudget)
    heartbeat_every_seconds: float = 0.5
    isolated_log_every_seconds: float = 30.0
    worker: str = "membership"


def settings_from(ws: MembershipSettings) -> MembershipWorkerSettings:
    """The supervisor's membership settings, with the key file read now (at start)."""
    key = read_key_file(ws.membership_key_file) if ws.membership_key_file else None
    return MembershipWorkerSettings(
        node_name=ws.node_name,
        key=key,
        insecure=ws.insecure,
        kubernetes=ws.mode == Mode.KUBERNETES,
        heartbeat_every_seconds=ws.heartbeat_seconds,
        worker=ws.name,
    )


def run(settings: MembershipWorkerSettings | MembershipSettings, inbox: Inbox, outbox: Outbox) -> None:
    """The worker entry point (spawn-safe: everything it needs comes in `settings`).

    Takes the supervisor's `MembershipSettings` (reading `--membership-key-file`
    at once, so a bad key file fails the start) or, in tests, a
    `MembershipWorkerSettings` directly.
    """
    if isinstance(settings, MembershipSettings):
        settings = settings_from(settings)
    worker = _Worker(settings, outbox)
    reader = InboxReader(inbox)
    try:
        worker.loop(reader)
    finally:
        worker.close()
        reader.close()


def _dead_after_text(timing: DetectorSettings) -> str:
    policy = timing.policy
    if not policy.adaptive:
        return f"{policy.shortest:.3f}"
    return f"adaptive({policy.shortest:.3f}-{policy.longest:.3f})"


class _Worker:
    def __init__(self, settings: MembershipWorkerSettings, outbox: Outbox) -> None:
        self.s = settings
        self.key = settings.key
        self.incarnation = settings.incarnation if settings.incarnation is not None else time.time_ns()
        self.seq = 0
        self.transport = Transport(settings.node_name, ports=settings.ports, bind_address=settings.bind_address)
        self.writer = HeartbeatWriter(settings.node_name, self.key)
        self.reader = HeartbeatReader(settings.node_name, self.key, frozenset())
        self.detector: FailureDetector | None = None
        self.consistency = ConsistencyTracker(grace_seconds=settings.consistency_grace_seconds)
        self.reporter = Reporter(
            outbox,
            node_name=settings.node_name,
            worker=settings.worker,
            isolated_log_every_seconds=settings.isolated_log_every_seconds,
        )
        # Peers the API vouches for (Kubernetes: Node Ready with a speaker on it).
        self.vouched: frozenset[str] = frozenset()
        self.drops = DropCounter()
        self.screen = Screen(frozenset(), self.incarnation)
        self.lanes: Lanes | None = None  # with a key (see _configure)
        self.known: frozenset[str] = frozenset()
        # Judgements and the socket filter's strict peers, as of detector.version
        # `judged_version` (None: recompute; a config changes what they depend on).
        self.judgements: dict[str, Judgement] = {}
        self.strict: frozenset[str] = frozenset()
        self.judged_version: int | None = None
        self.cpu = time.thread_time()
        now = time.monotonic()
        self.next_send = now
        self.next_report = now
        self.next_heartbeat = now
        self.next_drops = now + settings.drops_every_seconds
        self.kernel_drops = 0
        self.receive_gap = 0.0  # receiving.receive_gap for the configured peers
        self.next_receive = now

    # -- the loop ---------------------------------------------------------------

    def loop(self, reader: InboxReader) -> None:
        while True:
            sock = self.transport.sock
            # During the receive gap (many peers) the socket waits, its datagrams batch up.
            listening = sock is not None and time.monotonic() >= self.next_receive
            waits: list[Any] = [reader.wake_r] + ([sock] if listening else [])
            timeout = max(0.0, self._wake_at(listening) - time.monotonic())
            ready, _, _ = select.select(waits, [], [], timeout)
            now = time.monotonic()
            self._send_due(now)
            # Before a deadline is judged, whatever is queued counts, gap or not.
            judging = self.detector is not None and now >= self.detector.next_deadline()
            if sock is not None and (sock in ready or now >= self.next_receive or judging):
                self._receive(now)
            if reader.wake_r in ready:
                reader.drain_wakeups()
            while reader.messages:
                if not self._handle(reader.messages.popleft(), now):
                    return
            self._tick(time.monotonic())

    def _wake_at(self, listening: bool) -> float:
        """When the loop must run next (besides a datagram or a message arriving)."""
        due = [self.next_heartbeat]
        if self.transport.sock is not None and not listening:
            due.append(self.next_receive)
        if self.detector is not None:
            # Wake exactly at the next deadline: detection costs no extra loop turn.
            # Reports only exist with a detector: before the first config (the
            # supervisor starts this worker with the others, so it may wait a
            # second for one) the report time never moves, and waking for it
            # would spin the loop.
            due += [self.next_report, self.next_send, self.detector.next_deadline()]
        return min(due)

    def _handle(self, msg: object, now: float) -> bool:
        match msg:
            case ConfigLoaded(config=config):
                self._configure(config, now)
            case AllocationDone(result=result):
                self.consistency.set_ours(table_lines(result.assignments.values()), now)
                if self.consistency.too_large:
                    log.warning(
                        "membership.table_too_large node=%s services=%d note=peers get the digest only; a "
                        "mismatch alarm then lists all of this node's Services, not just the differing ones",
                        self.s.node_name, len(result.assignments),
                    )  # fmt: skip
            case Control.STOP:
                self._leave()
                return False
            case _:
                pass  # MembersChanged / ViewChanged are not for this worker
        return True

    def _send_due(self, now: float) -> None:
        if self.detector is None or now < self.next_send:
            return
        self._send_all(PacketType.HEARTBEAT)
        interval = self.detector.settings.interval_seconds
        # After a stall, send now and resume the rhythm from here, not in a burst.
        self.next_send = max(self.next_send + interval, now + interval / 2)

    def _tick(self, now: float) -> None:
        changed = False
        cpu = time.thread_time()
        busy, self.cpu = cpu - self.cpu, cpu
        if self.lanes is not None:
            self.lanes.calm(now)
        if now >= self.next_drops:
            self._count_kernel_drops()
            counts, last = self.drops.take()
            self.reporter.drops(counts, last)
            self.screen.refill()
            self.next_drops = now + self.s.drops_every_seconds
        if self.detector is not None:
            stalls = self.detector.stalls
            changed = self.reporter.transitions(self.detector.tick(now, busy))
            if self.detector.stalls != stalls:
                log.warning(
                    "membership.stalled node=%s unobserved_total_seconds=%.3f note=deadlines re-armed, no failover",
                    self.s.node_name,
                    self.detector.stalled_seconds,
                )
            self._send_due(now)
            changed = self.reporter.mismatch(self.consistency.mismatches(now)) or changed
            if self.detector.version != self.judged_version:
                # Only when a peer's liveness changed: O(peers) per loop turn
                # (a turn per few datagrams) was most of the worker's CPU at 250 peers.
                self.judged_version = self.detector.version
                self._judge()
                changed = self.reporter.judged(self.judgements, now) or changed
            port = self.transport.bound[1] if self.transport.bound else None
            self.reporter.isolation(self.detector, now, port=port, kubernetes=self.s.kubernetes)
        if self.detector is not None and (changed or now >= self.next_report):
            self._report(now)
            self.next_report = now + self.s.report_every_seconds
        if self.detector is not None:
            self.transport.set_strict(self.strict, self.incarnation)
        if now >= self.next_heartbeat:
            self.reporter.put(WorkerHeartbeat(worker=self.s.worker, pid=os.getpid(), at=now))
            self.next_heartbeat = now + self.s.heartbeat_every_seconds

    def _count_kernel_drops(self) -> None:
        total = self.transport.kernel_drops()
        if total is None:
            return
        # The count starts at 0 with each socket (a rebind starts a new one).
        before = self.kernel_drops if total >= self.kernel_drops else 0
        if total > before:
            self.drops.add(DropReason.KERNEL, self.transport.bound, "socket filter or full receive buffer",
                           count=total - before)  # fmt: skip
        self.kernel_drops = total

    def _judge(self) -> None:
        assert self.detector is not None
        peers = self.detector.peers()
        self.judgements = judge_all(peers, kubernetes=self.s.kubernetes, vouched=self.vouched)
        # A peer proven alive in this run echoes our incarnation: the kernel
        # refuses anything else from its address. Any other peer (not heard
        # yet, dead, left) may be starting over and echo an old one.
        self.strict = frozenset(p for p, s in peers.items() if s.alive and s.heard_at is not None)

    def _report(self, now: float) -> None:
        assert self.detector is not None
        bound = self.transport.bound
        status = {
            "node": self.s.node_name,
            "incarnation": self.incarnation,
            "bind": f"{bound[0]}:{bound[1]}" if bound else None,
            "authenticated": self.key is not None,
            "kubernetes_fallback": self.s.kubernetes,
        }
        self.reporter.report(now, self.detector, self.consistency, self.judgements, status)

    # -- config -------------------------------------------------------------------

    def _configure(self, config: Config, now: float) -> None:
        key_file = config.settings.membership.key_file
        if self.key is None and key_file:
            # The command line wins; the Settings object's keyFile is the fallback.
            self.key = read_key_file(key_file)
        problem = key_problem(config, node_name=self.s.node_name, key=self.key, insecure=self.s.insecure)
        if problem is not None:
            log.error("membership.refused node=%s reason=%s", self.s.node_name, problem)
            self.reporter.put(WorkerFailed(worker=self.s.worker, error=problem))
            raise SystemExit(2)
        first = self.detector is None
        ms = config.settings.membership
        peers = frozenset(n.name for n in config.nodes if n.name != self.s.node_name)
        # A Node without addresses has no running speaker (kubernetes/peers.py): nothing there announces.
        self.vouched = frozenset(n.name for n in config.nodes if n.ready and n.addresses)
        if self.key is None and peers:
            log.warning(
                "membership.insecure node=%s peers=%d note=heartbeats are NOT authenticated; anyone on the "
                "network can fake or replay them and move IPs; use --membership-key-file",
                self.s.node_name,
                len(peers),
            )
        self.transport.configure(config, ms.port)
        self.writer = HeartbeatWriter(self.s.node_name, self.key)
        interval = ms.interval_for(len(peers))
        timing = DetectorSettings(interval_seconds=interval, dead_after_seconds=ms.dead_after_seconds)
        if self.detector is None:
            self.detector = FailureDetector(
                timing, node_name=self.s.node_name, incarnation=self.incarnation, peers=peers, now=now
            )
        else:
            self.detector.retime(
                replace(
                    self.detector.settings,
                    interval_seconds=timing.interval_seconds,
                    dead_after_seconds=timing.dead_after_seconds,
                )
            )
            self.reporter.transitions(self.detector.set_peers(peers, now))
        self.consistency.set_peers(peers)
        self.known = peers
        self.reader = HeartbeatReader(self.s.node_name, self.key, peers)
        self.receive_gap = receive_gap(len(peers), interval)
        self.judged_version = None  # `vouched` may have changed
        self.screen.sources = self.transport.sources
        if self.key is not None:
            if self.lanes is None:
                self.lanes = self.screen.lanes = Lanes(self.key, self.s.node_name)
            self.lanes.peers = peers
        if first:
            log.info(
                "membership.started node=%s incarnation=%d bind=%s peers=%s interval=%.3f dead_after=%s mode=%s",
                self.s.node_name,
                self.incarnation,
                self.transport.bound,
                ",".join(sorted(peers)) or "-",
                timing.interval_seconds,
                _dead_after_text(timing),
                "kubernetes" if self.s.kubernetes else "standalone",
            )

    # -- wire ---------------------------------------------------------------------

    def _send_all(self, ptype: PacketType) -> None:
        detector = self.detector
        assert detector is not None
        self.seq += 1
        sent_at_ns = time.time_ns()

        write, incarnation, seq, digest = self.writer.write, self.incarnation, self.seq, self.consistency.digest
        echo_of, chunk_for = detector.replay.incarnation_of, self.consistency.chunk_for
        heartbeat = ptype is PacketType.HEARTBEAT
        # Only a peer whose digest differs from ours gets chunks (chunk_for says None to the
        # others): asked only of those, not once per datagram sent.
        differing = self.consistency.differing

        def packet_for(peer: str) -> bytes:
            return write(ptype, peer, incarnation=incarnation, seq=seq, sent_at_ns=sent_at_ns,
                         echo_incarnation=echo_of(peer), digest=digest,
                         chunk=chunk_for(peer) if heartbeat and peer in differing else None)  # fmt: skip

        self.transport.send_each(packet_for)

    def _receive(self, now: float) -> None:
        self.next_receive = now + self.receive_gap
        detector, lanes = self.detector, self.lanes
        if detector is None:
            # No config yet: nothing can be judged, so read nothing; the kernel's
            # buffer holds (or drops) what arrives until the first ConfigLoaded.
            return

        read = self.reader.read

        def handle(data: bytes, source: Any, arrived: float) -> None:
            result = read(data)
            if isinstance(result, Heartbeat):
                if lanes is not None:
                    lanes.heard(result)
                if result.echo_incarnation > self.incarnation:  # (rare: no call per datagram)
                    self._maybe_reincarnate(result)
                # Heard when it arrived, not when this turn read it (transport.recv).
                dropped, changes = detector.receive(result, arrived)
                if dropped is None:
                    self.consistency.heard(result.sender, result.digest, result.chunk, now)
                    if changes and self.reporter.transitions(changes):
                        # A LEAVING or a peer coming back: report in this turn's
                        # _tick, not at the next periodic report (up to 1 s away).
                        self.next_report = now
                    return
                result = dropped
            elif lanes is not None and result.reason is DropReason.BAD_MAC:
                lanes.guard(now)  # a forgery: check tokens before the HMAC for a while (receiving.Lanes)
            self.drops.add(result.reason, source, result.detail)

        turn = receive_turn(
            self.transport.recv,
            handle,
            screen=self.screen,
            drops=self.drops,
            budget=self.s.receive_budget,
            clock=time.monotonic,
            cpu=time.thread_time,
        )
        if turn.cut_short:
            # A flood reached the loop: heartbeats may wait behind it (detector.pressure),
            # so the next turn reads at once, not a receive gap from now.
            detector.pressure(now)
            self.next_receive = now

    def _maybe_reincarnate(self, hb: Heartbeat) -> None:
        # (A packet echoing a higher incarnation than ours gets here through
        # the Screen's stale allowance: at most a second late under a flood.)
        # The peer last accepted a *newer* incarnation of us than ours: our clock
        # stepped back across a restart (e.g. a Raspberry Pi booting without RTC).
        # The echo is authenticated, so moving above it is safe.
        if hb.echo_incarnation > self.incarnation and hb.echo_incarnation < 2**64 - 1:
            log.warning(
                "membership.reincarnated node=%s old=%d new=%d peer=%s note=wall clock is behind a previous run",
                self.s.node_name,
                self.incarnation,
                hb.echo_incarnation + 1,
                hb.sender,
            )
            self.incarnation, self.seq = hb.echo_incarnation + 1, 0
            self.screen.incarnation = self.incarnation
            if self.detector is not None:
                self.detector.incarnation = self.incarnation

    def _leave(self) -> None:
        if self.transport.sock is None or self.detector is None:
            return
        # Twice: one lost datagram would otherwise cost the peers a full deadline.
        for _ in range(2):
            self._send_all(PacketType.LEAVING)
        log.info("membership.leaving node=%s peers=%d", self.s.node_name, len(self.transport.peer_addrs))

    def close(self) -> None:
        self.transport.close()
