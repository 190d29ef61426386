"""The membership worker: the process shell around codec, detector and consistency.

`run(settings, inbox, outbox)` owns one UDP socket. Every `interval` it sends
each configured peer a heartbeat (unicast to the peer's InternalIP); it
receives theirs, feeds the pure `FailureDetector` and `ConsistencyTracker`,
and reports to the supervisor: `MembersChanged` when liveness or consistency
changes (and every second, for the last-heard ages), `WorkerHeartbeat` every
0.5 s, `MetricUpdate`s, and a `StatusReport`. On `Control.STOP` it tells every
peer LEAVING, so they take over at once, and returns.

Each loop turn drains the socket *before* asking the detector about deadlines,
so heartbeats that queued up while this process was not scheduled count.

What it does not do: decide who announces (election, in the announcers) or
watch Kubernetes (the watcher feeds Node objects through ConfigLoaded).
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import logging
import math
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from supervisor.config.model import Config, MembershipSettings
from supervisor.membership.codec import MAX_CHUNK, Dropped, DropReason, Heartbeat, PacketType, decode, encode
from supervisor.membership.consistency import DEFAULT_GRACE_SECONDS, ConsistencyTracker, table_lines
from supervisor.membership.detector import DetectorSettings, FailureDetector, Transition
from supervisor.messages import (
    AllocationDone,
    ConfigLoaded,
    Control,
    FromWorker,
    MemberInfo,
    MembersChanged,
    MetricKind,
    MetricOp,
    MetricUpdate,
    StatusReport,
    WorkerFailed,
    WorkerHeartbeat,
)
from supervisor.supervising.child import Inbox, Outbox
from supervisor.supervising.settings import WorkerSettings

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


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipWorkerSettings:
    """What the membership worker needs beyond the config (fixed for its life)."""

    node_name: str
    key: bytes | None = None
    # Run without a key even with peers (heartbeats carry no MAC). Also set
    # by `settings.membership.insecure` in the config.
    insecure: bool = False
    # None: the wall clock at start, in ns (must grow across restarts; see codec).
    incarnation: int | None = None
    # Per-node UDP port overrides by node name, for several nodes on one host (tests).
    ports: tuple[tuple[str, int], ...] = ()
    # None: this node's first InternalIP, or 0.0.0.0 when the config has none.
    bind_address: str | None = None
    consistency_grace_seconds: float = DEFAULT_GRACE_SECONDS
    report_every_seconds: float = 1.0
    heartbeat_every_seconds: float = 0.5
    isolated_log_every_seconds: float = 30.0
    worker: str = "membership"


class KeyFileError(ValueError):
    """The membership key file cannot be used; the message says why and how to fix it."""


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read `--membership-key-file`: the raw bytes, surrounding whitespace stripped."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(f"--membership-key-file {path}: cannot read it: {exc.strerror or exc}") from exc
    if not key:
        raise KeyFileError(
            f"--membership-key-file {path}: the file is empty; put a random secret in it "
            "(e.g. `openssl rand -base64 32 > FILE`), the same on every node"
        )
    return key


def key_problem(config: Config, *, node_name: str, key: bytes | None, insecure: bool) -> str | None:
    """Why membership must not start with this config, or None. The run command calls it too."""
    peers = [n.name for n in config.nodes if n.name != node_name]
    if not peers or key is not None or insecure or config.settings.membership.insecure:
        return None
    shown = ", ".join(sorted(peers)[:3]) + ("…" if len(peers) > 3 else "")
    return (
        f"membership: the config has {len(peers)} peer node(s) ({shown}) but no membership key, and "
        "unauthenticated heartbeats would let anyone on the LAN move your IPs. Create one secret for all "
        "nodes (e.g. `openssl rand -hex 32 > /etc/metalloid/membership.key`, copied to every node) and pass "
        "--membership-key-file PATH; or, on a trusted lab network only, pass --insecure "
        "(or set Settings spec.membership.insecure: true)"
    )


def settings_from(ws: WorkerSettings) -> MembershipWorkerSettings:
    """The supervisor's generic worker settings, with the key file read now (at start)."""
    key = read_key_file(ws.membership_key_file) if ws.membership_key_file else None
    return MembershipWorkerSettings(
        node_name=ws.node_name,
        key=key,
        insecure=ws.insecure,
        heartbeat_every_seconds=ws.heartbeat_seconds,
        worker=ws.name,
    )


def run(settings: MembershipWorkerSettings | WorkerSettings, inbox: Inbox, outbox: Outbox) -> None:
    """The worker entry point (spawn-safe: everything it needs comes in `settings`).

    Takes the supervisor's `WorkerSettings` (reading `--membership-key-file`
    at once, so a bad key file fails the start) or, in tests, a
    `MembershipWorkerSettings` directly.
    """
    if isinstance(settings, WorkerSettings):
        settings = settings_from(settings)
    worker = _Worker(settings, outbox)
    reader = _InboxReader(inbox)
    try:
        worker.loop(reader)
    finally:
        worker.close()
        reader.close()


class _InboxReader:
    """Moves inbox messages to a deque and wakes the select() through a socketpair.

    The inbox may be a multiprocessing or a plain queue (tests), neither of
    which select() can wait on; a thread bridges them.
    """

    def __init__(self, inbox: Inbox) -> None:
        self.messages: collections.deque[object] = collections.deque()
        self.wake_r, self._wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self._inbox = inbox
        threading.Thread(target=self._pump, name="membership-inbox", daemon=True).start()

    def _pump(self) -> None:
        while True:
            msg = self._inbox.get()
            self.messages.append(msg)
            try:
                self._wake_w.send(b"!")
            except OSError:
                return
            if msg is Control.STOP:
                return

    def drain_wakeups(self) -> None:
        try:
            while self.wake_r.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.wake_r.close()
        self._wake_w.close()


class _Worker:
    def __init__(self, settings: MembershipWorkerSettings, outbox: Outbox) -> None:
        self.s = settings
        self.outbox = outbox
        self.key = settings.key
        self.incarnation = settings.incarnation if settings.incarnation is not None else time.time_ns()
        self.seq = 0
        self.config: Config | None = None
        self.sock: socket.socket | None = None
        self.bound: tuple[str, int] | None = None
        self.peer_addrs: dict[str, tuple[str, int]] = {}
        self.detector: FailureDetector | None = None
        self.consistency = ConsistencyTracker(grace_seconds=settings.consistency_grace_seconds)
        self.last_mismatch: tuple[tuple[str, tuple[Any, ...]], ...] = ()
        now = time.monotonic()
        self.next_send = now
        self.next_report = now
        self.next_heartbeat = now
        self.next_isolated_log = now
        self.rejected_logged: dict[DropReason, float] = {}

    # -- the loop ---------------------------------------------------------------

    def loop(self, reader: _InboxReader) -> None:
        while True:
            waits: list[Any] = [reader.wake_r] + ([self.sock] if self.sock else [])
            due = [self.next_heartbeat, self.next_report]
            if self.detector is not None:
                # Wake exactly at the next deadline: detection costs no extra loop turn.
                due += [self.next_send, self.detector.next_deadline()]
            timeout = max(0.0, min(due) - time.monotonic())
            ready, _, _ = select.select(waits, [], [], timeout)
            now = time.monotonic()
            if self.sock is not None and self.sock in ready:
                self._drain_socket(now)
            if reader.wake_r in ready:
                reader.drain_wakeups()
            while reader.messages:
                if not self._handle(reader.messages.popleft(), now):
                    return
            self._tick(now)

    def _handle(self, msg: object, now: float) -> bool:
        match msg:
            case ConfigLoaded(config=config):
                self._configure(config, now)
            case AllocationDone(result=result):
                self.consistency.set_ours(table_lines(result.assignments.values()), now)
            case Control.STOP:
                self._leave()
                return False
            case _:
                pass  # MembersChanged / ViewChanged are not for this worker
        return True

    def _tick(self, now: float) -> None:
        changed = False
        if self.detector is not None:
            stalls = self.detector.stalls
            changed = self._apply(self.detector.tick(now))
            if self.detector.stalls != stalls:
                log.warning(
                    "membership.stalled node=%s unobserved_total_seconds=%.3f note=deadlines re-armed, no failover",
                    self.s.node_name,
                    self.detector.stalled_seconds,
                )
            if now >= self.next_send:
                self._send_all(PacketType.HEARTBEAT)
                interval = self.detector.settings.interval_seconds
                # After a stall, send now and resume the rhythm from here, not in a burst.
                self.next_send = max(self.next_send + interval, now + interval / 2)
            mismatch = self.consistency.mismatches(now)
            if mismatch != self.last_mismatch:
                self._mismatch_changed(mismatch)
                changed = True
            self._check_isolated(now)
        if changed or now >= self.next_report:
            self._report(now)
            self.next_report = now + self.s.report_every_seconds
        if now >= self.next_heartbeat:
            self._put(WorkerHeartbeat(worker=self.s.worker, pid=os.getpid(), at=now))
            self.next_heartbeat = now + self.s.heartbeat_every_seconds

    # -- config -------------------------------------------------------------------

    def _configure(self, config: Config, now: float) -> None:
        key_file = config.settings.membership.key_file
        if self.key is None and key_file:
            # The command line wins; the Settings object's keyFile is the fallback.
            self.key = read_key_file(key_file)
        problem = key_problem(config, node_name=self.s.node_name, key=self.key, insecure=self.s.insecure)
        if problem is not None:
            log.error("membership.refused node=%s reason=%s", self.s.node_name, problem)
            self._put(WorkerFailed(worker=self.s.worker, error=problem))
            raise SystemExit(2)
        first = self.config is None
        self.config = config
        ms = config.settings.membership
        peers = frozenset(n.name for n in config.nodes if n.name != self.s.node_name)
        if self.key is None and peers:
            log.warning(
                "membership.insecure node=%s peers=%d note=heartbeats are NOT authenticated; anyone on the "
                "network can fake or replay them and move IPs; use --membership-key-file",
                self.s.node_name,
                len(peers),
            )
        self._bind(config, ms)
        timing = DetectorSettings(interval_seconds=ms.interval_seconds, dead_after_seconds=ms.dead_after_seconds)
        if self.detector is None:
            self.detector = FailureDetector(timing, node_name=self.s.node_name, peers=peers, now=now)
        else:
            self.detector.settings = replace(
                self.detector.settings,
                interval_seconds=timing.interval_seconds,
                dead_after_seconds=timing.dead_after_seconds,
            )
            self._apply(self.detector.set_peers(peers, now))
        self.consistency.set_peers(peers)
        if first:
            log.info(
                "membership.started node=%s incarnation=%d bind=%s peers=%s interval=%.3f dead_after=%.3f",
                self.s.node_name,
                self.incarnation,
                self.bound,
                ",".join(sorted(peers)) or "-",
                ms.interval_seconds,
                ms.dead_after_seconds,
            )

    def _bind(self, config: Config, ms: MembershipSettings) -> None:
        ports = dict(self.s.ports)
        own = config.node(self.s.node_name)
        address = self.s.bind_address or (str(own.addresses[0]) if own and own.addresses else "0.0.0.0")
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        want = (address, ports.get(self.s.node_name, ms.port))
        self.peer_addrs = {}
        for node in config.nodes:
            if node.name == self.s.node_name:
                continue
            same_family = [a for a in node.addresses if (a.version == 6) == (family == socket.AF_INET6)]
            if same_family:
                self.peer_addrs[node.name] = (str(same_family[0]), ports.get(node.name, ms.port))
            else:
                log.warning(
                    "membership.no_address peer=%s note=the Node has no InternalIP of family %s",
                    node.name,
                    "IPv6" if family == socket.AF_INET6 else "IPv4",
                )
        if want == self.bound and self.sock is not None:
            return
        if self.sock is not None:
            self.sock.close()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(want)
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:
                sock.close()
                raise
            # The Node's InternalIP is not on this host (a copied config, a
            # renumbered host). Heartbeats are authenticated by name and key,
            # not by source address, so listen everywhere rather than crash-loop;
            # peers can only reach us if that address routes here, so say so.
            log.warning(
                "membership.address_not_local node=%s address=%s note=listening on all addresses; peers send "
                "heartbeats to %s, so fix the Node's InternalIP if it is not this host's",
                self.s.node_name, want[0], want[0],
            )
            want = ("::" if family == socket.AF_INET6 else "0.0.0.0", want[1])
            sock.bind(want)
        sock.setblocking(False)
        self.sock, self.bound = sock, want

    # -- wire ---------------------------------------------------------------------

    def _send_all(self, ptype: PacketType) -> None:
        assert self.sock is not None and self.detector is not None
        self.seq += 1
        for peer, addr in self.peer_addrs.items():
            hb = Heartbeat(
                type=ptype,
                sender=self.s.node_name,
                receiver=peer,
                incarnation=self.incarnation,
                seq=self.seq,
                sent_at_ns=time.time_ns(),
                echo_incarnation=self.detector.replay.incarnation_of(peer),
                digest=self.consistency.digest,
                chunk=self.consistency.chunk_for(peer) if ptype is PacketType.HEARTBEAT else None,
            )
            try:
                self.sock.sendto(encode(hb, self.key), addr)
            except OSError as exc:
                # A peer's network may be down; its deadline on our side is what counts.
                log.debug("membership.send_failed peer=%s addr=%s error=%s", peer, addr, exc)

    def _drain_socket(self, now: float) -> None:
        assert self.sock is not None and self.detector is not None
        known = frozenset(self.peer_addrs) | frozenset(self.detector.peers())
        for _ in range(4096):  # bounded: a flood must not starve the deadlines
            try:
                data, addr = self.sock.recvfrom(MAX_CHUNK + 1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("membership.recv_failed error=%s", exc)
                return
            result = decode(data, key=self.key, receiver=self.s.node_name, known=known)
            if isinstance(result, Heartbeat):
                self._maybe_reincarnate(result)
                dropped, changes = self.detector.receive(result, now)
                if dropped is None:
                    self.consistency.heard(result.sender, result.digest, result.chunk, now)
                    if self._apply(changes):
                        # A LEAVING or a peer coming back: report in this turn's
                        # _tick, not at the next periodic report (up to 1 s away).
                        self.next_report = now
                    continue
                result = dropped
            self._rejected(result, addr, now)

    def _maybe_reincarnate(self, hb: Heartbeat) -> None:
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

    def _rejected(self, dropped: Dropped, addr: Any, now: float) -> None:
        self._metric(M_REJECTED, MetricKind.COUNTER, MetricOp.INC, 1.0, (("reason", dropped.reason.value),))
        if now - self.rejected_logged.get(dropped.reason, -math.inf) >= 10.0:
            self.rejected_logged[dropped.reason] = now
            log.warning("membership.rejected reason=%s from=%s detail=%s", dropped.reason.value, addr, dropped.detail)

    def _leave(self) -> None:
        if self.sock is None or self.detector is None:
            return
        # Twice: one lost datagram would otherwise cost the peers a full deadline.
        for _ in range(2):
            self._send_all(PacketType.LEAVING)
        log.info("membership.leaving node=%s peers=%d", self.s.node_name, len(self.peer_addrs))

    # -- reporting ------------------------------------------------------------------

    def _apply(self, changes: list[Transition]) -> bool:
        for t in changes:
            if t.alive:
                log.info("membership.peer_alive peer=%s", t.peer)
            else:
                silence = "-" if t.silence_seconds is None else f"{t.silence_seconds:.3f}"
                log.warning("membership.peer_dead peer=%s reason=%s silence_seconds=%s", t.peer, t.reason, silence)
                if t.reason == "deadline" and t.silence_seconds is not None:
                    self._metric(M_DETECTION, MetricKind.HISTOGRAM, MetricOp.OBSERVE, t.silence_seconds)
        return bool(changes)

    def _mismatch_changed(self, mismatch: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
        before = {peer for peer, _ in self.last_mismatch}
        now_set = {peer for peer, _ in mismatch}
        for peer, services in mismatch:
            log.warning(
                "membership.digest_mismatch peer=%s services=%s note=the nodes disagree on assignments; "
                "compare `metalloid plan` and the config files on both",
                peer,
                ",".join(str(s) for s in services) or "-",
            )
            self._metric(M_MISMATCH, MetricKind.GAUGE, MetricOp.SET, 1.0, (("peer", peer),))
        for peer in sorted(before - now_set):
            log.info("membership.digest_match peer=%s", peer)
            self._metric(M_MISMATCH, MetricKind.GAUGE, MetricOp.SET, 0.0, (("peer", peer),))
        self.last_mismatch = mismatch

    def _check_isolated(self, now: float) -> None:
        assert self.detector is not None
        isolated = self.detector.isolated()
        if isolated and now >= self.next_isolated_log:
            never = [p for p in sorted(self.detector.peers()) if not self.detector.ever_heard(p)]
            log.error(
                "membership.isolated node=%s peers=%d never_heard=%s note=this node hears no peer and announces "
                "alone; if the peers are up, UDP port %s is probably firewalled (split brain: see docs/failover.md)",
                self.s.node_name,
                len(self.detector.peers()),
                ",".join(never) or "-",
                self.bound[1] if self.bound else "?",
            )
            self.next_isolated_log = now + self.s.isolated_log_every_seconds
        elif not isolated:
            self.next_isolated_log = now

    def _report(self, now: float) -> None:
        if self.detector is None:
            return
        alive = self.detector.alive()
        members = [
            MemberInfo(name=self.s.node_name, alive=True, last_heard_seconds=0.0, digest=self.consistency.digest.hex())
        ]
        for peer, state in sorted(self.detector.peers().items()):
            age = None if state.heard_at is None else round(now - state.heard_at, 3)
            members.append(
                MemberInfo(
                    name=peer,
                    alive=state.alive,
                    last_heard_seconds=age,
                    digest=self.consistency.peer_digest(peer).hex(),
                )
            )
        self._put(MembersChanged(alive=alive, members=tuple(members), digest_mismatch=self.last_mismatch))
        isolated = self.detector.isolated()
        self._metric(M_ALIVE, MetricKind.GAUGE, MetricOp.SET, float(len(alive)))
        self._metric(M_ISOLATED, MetricKind.GAUGE, MetricOp.SET, 1.0 if isolated else 0.0)
        self._put(
            StatusReport(
                worker=self.s.worker,
                payload={
                    "node": self.s.node_name,
                    "incarnation": self.incarnation,
                    "bind": f"{self.bound[0]}:{self.bound[1]}" if self.bound else None,
                    "authenticated": self.key is not None,
                    "isolated": isolated,
                    "stalls": self.detector.stalls,
                    "members": [
                        {
                            "name": m.name,
                            "alive": m.alive,
                            "last_heard_seconds": m.last_heard_seconds,
                            "digest": m.digest,
                        }
                        for m in members
                    ],
                    "digest_mismatch": [
                        {"peer": peer, "services": [str(s) for s in services]} for peer, services in self.last_mismatch
                    ],
                },
            )
        )

    def _metric(
        self,
        metric: tuple[str, str],
        kind: MetricKind,
        op: MetricOp,
        value: float,
        labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._put(MetricUpdate(name=metric[0], kind=kind, documentation=metric[1], labels=labels, op=op, value=value))

    def _put(self, msg: FromWorker) -> None:
        self.outbox.put(msg)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
