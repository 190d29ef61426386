"""The bgp announcer: MetalLB's BGP mode on FRR.

`update()` is pure planning plus one assignment: the view becomes a `Plan`
(`plugins.bgp.planning`, shared with the bgp_stub reference plugin), the plan
becomes FRR configuration text (`plugins.bgp.frrconf`), and the text becomes
the desired state. A worker thread owns every slow thing (starting FRR's
daemons, `frr-reload.py`, `vtysh` queries), so `update()` and `tick()` never
block the host's loop: it applies the latest desired text when it differs from
the last applied one (so FRR is reloaded only on change, and a burst of
updates costs one reload) -- the first time, and after FRR restarted, whole
through frr-reload.py, then only the difference through one `vtysh -f`
(`plugins.bgp.frrdelta`), falling back to frr-reload.py if that fails -- restarts a managed FRR whose daemon died and
re-applies the whole configuration to it, and polls the sessions every
`poll_seconds` for /status and the `metallb_bgp_*` metrics.

Every eligible node advertises (no election): the router spreads traffic over
all of them with ECMP. In standalone mode with bind-local (Settings.bindLocal
or the `metalloid.io/bind-local` annotation on the pool) the advertised IPs
are also bound on `lo`, so this host's own daemons answer the traffic the
router sends (the layer 2 plugin's `LocalBinder`).
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from plugins.bgp.frr import FRR, FRRError, Neighbor, parse_neighbors, settings_from
from plugins.bgp.frrconf import render
from plugins.bgp.frrdelta import compute
from plugins.bgp.frrmetrics import (
    BFD_COUNTERS,
    BFD_PEERS,
    BFDPeerStats,
    BGPNeighborStats,
    Exporter,
    SessionRef,
    parse_bfd,
    parse_bgp,
    samples,
)
from plugins.bgp.planning import Plan, Route, plan
from plugins.bgp.secrets import PasswordSecrets, file_reader, kubernetes_reader
from plugins.bgp.speakermetrics import SPEAKER_ANNOUNCED, Series, announced_series, sync_announced
from plugins.layer2.localbind import LocalBinder
from supervisor.api import AnnouncerHost, AnnouncerStatus, AnnouncerView, Config, IPAddress, Previous, ServiceKey

BIND_LOCAL_ANNOTATION = "metalloid.io/bind-local"
# How long a no longer wanted IP stays on `lo` waiting for FRR to take its withdrawal (then it goes anyway).
UNBIND_WAIT_SECONDS = 10.0
NEIGHBORS = "show bgp vrf all neighbors json"
# How long a graceful stop waits for FRR to write the withdrawal to its sessions (then it goes on).
WITHDRAWAL_SENT_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What the worker last saw of FRR (replaced whole, read by the host's thread)."""

    neighbors: tuple[Neighbor, ...] = ()
    # The same answer for MetalLB's FRR-mode metrics, and bfdd's peers (plugins.bgp.frrmetrics).
    bgp_stats: tuple[BGPNeighborStats, ...] = ()
    bfd_stats: tuple[BFDPeerStats, ...] = ()
    applied_at: float | None = None
    reloads: int = 0
    last_reload_seconds: float | None = None
    # How the last change went in: "delta" (vtysh -f of the difference) or "full" (frr-reload.py).
    last_apply: str = ""
    last_apply_lines: int = 0
    delta_failures: int = 0
    frr_restarts: int = 0
    error: str | None = None
    ready: bool = False


class BGPAnnouncer:
    protocol: ClassVar[str] = "bgp"

    def __init__(self, host: AnnouncerHost, frr: FRR | None = None, binder: LocalBinder | None = None,
                 secrets: PasswordSecrets | None = None) -> None:
        self.host = host
        # What the host says (a speaker: "kubernetes", `metalloid run`: "standalone"), not the
        # environment: a speaker run outside a pod (--kubeconfig, --api-server) is still Kubernetes.
        self.mode = host.mode
        self.frr = frr or FRR(settings_from(host.settings, node=host.node_name, mode=self.mode))
        self.binder = binder or LocalBinder()
        self.plan = Plan(sessions=(), routes=(), not_advertised=())
        self.snapshot = Snapshot()
        self._desired: str | None = None
        self._applied: str | None = None
        self._bound: set[IPAddress] = set()
        # Bound IPs no longer wanted: (the desired-text generation that withdraws their routes, deadline).
        self._unbinding: dict[IPAddress, tuple[int, float]] = {}
        self._generation = 0  # of `_desired`, +1 per change
        self._applied_generation = 0  # the generation FRR runs (written by the worker)
        self._announced: Series = frozenset()
        self._metrics = Exporter(host)
        self._bfd_error: str | None = None
        self._exported: Snapshot | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._skipped: tuple[tuple[str, str], ...] = ()
        self._config = Config()
        self._render_lock = threading.Lock()
        self.secrets = secrets or PasswordSecrets(
            kubernetes_reader(host) if self.mode == "kubernetes" else file_reader(self.frr.settings.secrets_dir))
        self._ips: dict[ServiceKey, tuple[IPAddress, ...]] = {}

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        started = self.frr.start_daemons()
        if started:
            self.host.log.info("bgp.frr_started daemons=%s run_dir=%s", ",".join(started), self.frr.run_dir)
        self._worker = threading.Thread(target=self._run, name="bgp-frr", daemon=True)
        self._worker.start()
        self.host.log.info("bgp.started node=%s mode=%s managed=%s run_dir=%s", self.host.node_name, self.mode,
                           self.frr.settings.manage_daemons, self.frr.run_dir)

    def recover(self, previous: Previous) -> None:
        """Unbind what the last process had bound on `lo`; FRR itself is adopted as it runs, and
        the first update's reload makes its configuration ours again. The host kept the killed
        process's counters, so FRR's counts are not added to them a second time."""
        self._metrics.resume_after_kill()
        for ip_text in (previous.remembered or {}).get("bound", []):
            ip = ipaddress.ip_address(ip_text)
            self.binder.unbind(ip)
            self.host.log.info("bgp.bind_local.recovered ip=%s", ip)

    def update(self, view: AnnouncerView) -> None:
        before = {(r.peer, str(r.prefix)) for r in self.plan.routes}
        with self._render_lock:  # the worker renders from the same two
            self.plan = plan(view)
            self._config = view.config
        self._ips = {a.service: a.ips for a in view.assignments}
        after = {(r.peer, str(r.prefix)) for r in self.plan.routes}
        for peer, prefix in sorted(after - before):
            self.host.log.info("bgp.route_added peer=%s prefix=%s", peer, prefix)
        for peer, prefix in sorted(before - after):
            self.host.log.info("bgp.route_withdrawn peer=%s prefix=%s", peer, prefix)
        if self.secrets.want(s.password_secret for s in self.plan.sessions if s.password_secret and not s.password):
            self._wake.set()  # a Secret never read: the worker reads it and renders again
        self._render()
        self._bind(view)
        self._export_announced(view)

    def _render(self) -> None:
        """The desired FRR text from the plan and the passwords read so far (host's loop and worker)."""
        with self._render_lock:
            rendered = render(self.plan, self._config, hostname=self.host.node_name, passwords=self._passwords())
            pending = {s.peer for s in self.plan.sessions
                       if s.password_secret and self.secrets.pending(s.password_secret)}  # fmt: skip
            for peer, why in rendered.skipped:
                # Not an error while its Secret is being read for the first time.
                if (peer, why) not in self._skipped and peer not in pending:
                    self.host.log.error("bgp.peer_skipped peer=%s reason=%s", peer, why)
            self._skipped = rendered.skipped
            self._set_desired(rendered.text)

    def _passwords(self) -> dict[str, str]:
        """BGPPeer name → the password its passwordSecret held when last read."""
        found = {}
        for session in self.plan.sessions:
            value = self.secrets.cached(session.password_secret) if session.password_secret else None
            if value is not None and not session.password:
                found[session.peer] = value
        return found

    def _set_desired(self, text: str) -> None:
        with self._lock:
            changed = text != self._desired
            self._desired = text
            if changed:
                self._generation += 1
        if changed:
            self._wake.set()

    def _bind(self, view: AnnouncerView) -> None:
        wanted: set[IPAddress] = set()
        if view.mode == "standalone":
            advertised = {s for r in self.plan.routes for s in r.services}
            for assignment in view.assignments:
                pool = next((p for p in view.config.pools if p.name == assignment.pool), None)
                annotated = pool is not None and dict(pool.annotations).get(BIND_LOCAL_ANNOTATION, "") == "true"
                if assignment.service in advertised and (view.config.settings.bind_local or annotated):
                    wanted.update(assignment.ips)
        for ip in wanted:
            self._unbinding.pop(ip, None)  # wanted again before its route went
        new = sorted(wanted - self._bound, key=str)
        if new:
            # Write-ahead, once for the batch: a kill mid-way leaves a superset to unbind, which is harmless.
            self.host.remember({"bound": sorted(map(str, self._bound | set(new)))})
        for ip in new:
            self.binder.bind(ip)
            self._bound.add(ip)
        # The route goes first (the router stops sending), then the address: an IP unbound before
        # FRR has taken the `no network` drops the traffic still routed here, and 999 address
        # deletions racing the delta held every node's bgpd table for ~20 s (BENCHMARKS.md).
        with self._lock:
            generation = self._generation
        deadline = time.monotonic() + UNBIND_WAIT_SECONDS
        for ip in self._bound - wanted:
            self._unbinding.setdefault(ip, (generation, deadline))

    def _unbind_withdrawn(self, now: float) -> None:
        """Unbind the addresses whose routes FRR has withdrawn (or after UNBIND_WAIT_SECONDS, if FRR
        has not taken the change: the address must not outlive its Service for long)."""
        applied = self._applied_generation
        due = sorted((ip for ip, (generation, deadline) in self._unbinding.items()
                      if applied >= generation or now >= deadline), key=str)  # fmt: skip
        for ip in due:
            del self._unbinding[ip]
            self.binder.unbind(ip)
            self._bound.discard(ip)
        if due:
            self.host.remember({"bound": sorted(map(str, self._bound))})

    # -- the worker -----------------------------------------------------------

    def _run(self) -> None:
        next_poll = 0.0
        while not self._stopping.is_set():
            self._wake.wait(timeout=min(self.frr.settings.poll_seconds, 0.2))
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._refresh_secrets()
                self._reconcile()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.frr.settings.poll_seconds
                    answer = self.frr.show(NEIGHBORS)
                    neighbors = parse_neighbors(answer)
                    if self.plan.sessions and not neighbors and self._applied is not None:
                        # An FRR we do not manage came back empty (its container restarted).
                        self._applied = None
                        self._wake.set()
                    self.snapshot = replace(self.snapshot, neighbors=neighbors, bgp_stats=parse_bgp(answer),
                                            bfd_stats=self._poll_bfd(), error=None,
                                            ready=self._applied is not None)
            except (FRRError, OSError) as exc:
                self.host.log.error("bgp.frr_error error=%s", exc)
                self.snapshot = replace(self.snapshot, error=str(exc), ready=False)
                self._stopping.wait(0.5)

    def _poll_bfd(self) -> tuple[BFDPeerStats, ...]:
        """bfdd's peers and counters, asked only while a session has a BFD profile (else bfdd has
        no peer of ours). A failure here costs the BFD metrics only, logged once per error."""
        if not any(s.bfd_profile for s in self.plan.sessions):
            return ()
        try:
            found = parse_bfd(self.frr.show(BFD_PEERS), self.frr.show(BFD_COUNTERS))
        except (FRRError, OSError, subprocess.TimeoutExpired) as exc:
            if str(exc) != self._bfd_error:
                self.host.log.error("bgp.bfd_query_failed error=%s", exc)
            self._bfd_error = str(exc)
            return ()
        self._bfd_error = None
        return found

    def _refresh_secrets(self) -> None:
        changed, errors = self.secrets.refresh()
        for (namespace, name), error in errors:
            self.host.log.error("bgp.password_secret_unreadable secret=%s/%s error=%s", namespace, name, error)
        if changed:
            self._render()

    def _reconcile(self) -> None:
        dead = self.frr.dead()
        if dead:
            self.host.log.error("bgp.frr_daemon_died daemons=%s action=restart", ",".join(dead))
            self.frr.stop_daemons()
            self.frr.start_daemons()
            self._applied = None
            self.snapshot = replace(self.snapshot, frr_restarts=self.snapshot.frr_restarts + 1)
        with self._lock:
            desired, generation = self._desired, self._generation
        if desired is None or desired == self._applied:
            self._applied_generation = generation
            return
        started = time.monotonic()
        how, lines, failures = self._apply(desired)
        took = time.monotonic() - started
        self._applied = desired
        self._applied_generation = generation
        self.host.log.info("bgp.frr_reloaded seconds=%.3f how=%s lines=%d", took, how, lines)
        self.snapshot = replace(self.snapshot, applied_at=time.time(), reloads=self.snapshot.reloads + 1,
                                last_reload_seconds=took, last_apply=how, last_apply_lines=lines,
                                delta_failures=self.snapshot.delta_failures + failures, error=None, ready=True)

    def _apply(self, desired: str) -> tuple[str, int, int]:
        """Apply `desired`: only its difference from what FRR runs when that is known (after a
        first full apply by this process, and no FRR restart since), else, or when the difference
        fails, the whole of it through frr-reload.py. (how, configuration lines sent, delta failures)."""
        if self._applied is not None and self.frr.settings.incremental_apply:
            delta = compute(self._applied, desired)
            try:
                self.frr.apply_delta(delta.script, desired)
                return "delta", delta.removed + delta.added, 0
            except (FRRError, OSError, subprocess.TimeoutExpired) as exc:
                self.host.log.error("bgp.frr_delta_failed error=%s removed=%d added=%d action=full_reload",
                                    exc, delta.removed, delta.added)
                self.frr.apply(desired)
                return "full", desired.count("\n"), 1
        self.frr.apply(desired)
        return "full", desired.count("\n"), 0

    # -- reporting --------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self._unbinding:
            self._unbind_withdrawn(now)
        snapshot = self.snapshot
        if snapshot is self._exported:
            return
        self._exported = snapshot
        sessions = [SessionRef(address=s.neighbor, port=s.peer_port, vrf=s.vrf,
                               pending=sum(1 for r in self.plan.routes if r.peer == s.peer))
                    for s in self.plan.sessions]
        self._metrics.export(samples(sessions, snapshot.bgp_stats, snapshot.bfd_stats))

    def _export_announced(self, view: AnnouncerView) -> None:
        self._announced = sync_announced(self.host, self._announced, announced_series(self.plan, view.node_name))

    def status(self) -> AnnouncerStatus:
        snapshot = self.snapshot
        frr_state = {(n.address, n.vrf): n for n in snapshot.neighbors}
        skipped = dict(self._skipped)
        sessions = []
        for s in self.plan.sessions:
            neighbor = frr_state.get((s.neighbor, s.vrf))
            state = neighbor.state if neighbor else ("not configured: " + skipped[s.peer] if s.peer in skipped
                                                      else "unknown (FRR not answering yet)")
            sessions.append({
                "peer": s.peer, "address": s.neighbor, "port": s.peer_port,
                "peer_asn": s.peer_asn or s.dynamic_asn, "my_asn": s.my_asn, "router_id": s.router_id,
                "hold_time_seconds": s.hold_time_seconds, "keepalive_time_seconds": s.keepalive_time_seconds,
                "ebgp_multihop": s.ebgp_multihop, "password_set": s.password_set, "vrf": s.vrf,
                "bfd_profile": s.bfd_profile, "graceful_restart": s.graceful_restart,
                "state": state, "prefixes_sent": neighbor.prefixes_sent if neighbor else 0,
                "updates_sent": neighbor.updates_sent if neighbor else 0,
            })
        established = {s.peer for s, d in zip(self.plan.sessions, sessions, strict=True) if d["state"] == "Established"}
        out: dict[str, Any] = {
            "sockets_ready": snapshot.ready,
            "frr": {
                "run_dir": str(self.frr.run_dir), "managed": self.frr.settings.manage_daemons,
                "pids": self.frr.pids() if self.frr.settings.manage_daemons else {},
                "reloads": snapshot.reloads, "last_reload_seconds": snapshot.last_reload_seconds,
                "last_apply": snapshot.last_apply, "last_apply_lines": snapshot.last_apply_lines,
                "delta_failures": snapshot.delta_failures,
                "restarts": snapshot.frr_restarts, "error": snapshot.error,
                "in_sync": self._applied is not None and self._applied == self._desired,
            },
            "sessions": sessions,
            "routes": [_route_json(r, r.peer in established) for r in self.plan.routes],
            # One entry per Service IP a route carries (the contract's "ip" is an IP: the
            # prefix, aggregated or not, goes in "prefix").
            "announcements": [
                {"service": str(svc), "ip": str(ip), "prefix": str(r.prefix), "protocol": "bgp",
                 "node": self.host.node_name,
                 "reason": f"advertised to BGPPeer {r.peer}"
                           + ("" if r.peer in established else " (session not established)"),
                 # The peers whose FRR configuration holds the route, up or not (MetalLB's
                 # ServiceBGPStatus.status.peers); a skipped peer's is not in FRR at all.
                 "peers": [] if r.peer in skipped else [r.peer]}
                for r in self.plan.routes for svc in r.services
                for ip in self._ips.get(svc, ()) if ip in r.prefix
            ],
            "not_advertised": [{"service": str(k), "reason": why} for k, why in self.plan.not_advertised],
        }
        return out  # type: ignore[return-value]

    def stop(self, *, handover: bool) -> None:
        """Withdraw every route first (a reload with no networks), then stop FRR and unbind."""
        if handover and self._desired is not None and self._applied is not None:
            withdrawn = replace(self.plan, routes=())
            try:
                # The same passwords, so that only the routes change (no session is reset).
                text = render(withdrawn, self._config, hostname=self.host.node_name,
                              passwords=self._passwords()).text
                self._stopping.set()
                self._wake.set()
                if self._worker is not None:
                    self._worker.join(timeout=10)
                how, lines, _ = self._apply(text)
                sent = self._await_withdrawal_sent(time.monotonic() + WITHDRAWAL_SENT_WAIT_SECONDS)
                self.host.log.info("bgp.withdrawn_all routes=%d how=%s lines=%d sent=%s drain=%gs",
                                   len(self.plan.routes), how, lines, sent, self.frr.settings.drain_seconds)
                # FRR has written the withdrawal to every session; the router still has to take it
                # into its kernel. Until it has, flows still arrive here, and an address or FRR
                # gone now would refuse them.
                time.sleep(self.frr.settings.drain_seconds)
            except (FRRError, OSError, subprocess.TimeoutExpired) as exc:
                self.host.log.error("bgp.withdraw_failed error=%s", exc)
        self._stopping.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
        self.frr.stop_daemons()
        for ip in sorted(self._bound, key=str):
            self.binder.unbind(ip)
        self._bound.clear()
        self._unbinding.clear()
        for labels in sorted(self._announced):
            self.host.remove(SPEAKER_ANNOUNCED, dict(labels))
        self._announced = frozenset()
        self._metrics.clear()
        self.host.log.info("bgp.stopped handover=%s", handover)


    def _await_withdrawal_sent(self, deadline: float) -> bool:
        """Poll FRR until no established session still advertises a prefix or holds an unsent
        message (`sentPrefixCounter`, `depthOutq`): the withdrawal is on the wire. False at `deadline`."""
        while True:
            try:
                neighbors = parse_neighbors(self.frr.show(NEIGHBORS))
            except (FRRError, OSError, subprocess.TimeoutExpired):
                neighbors = None
            if neighbors is not None and withdrawal_sent(neighbors):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def withdrawal_sent(neighbors: tuple[Neighbor, ...]) -> bool:
    """Every established session has been sent every withdrawal (pure)."""
    return all(n.prefixes_sent == 0 and n.out_queue == 0 for n in neighbors if n.established)


def _route_json(route: Route, established: bool) -> dict[str, Any]:
    return {
        "peer": route.peer, "prefix": str(route.prefix),
        "next_hop": str(route.next_hop) if route.next_hop else None,
        "local_pref": route.local_pref, "communities": list(route.communities),
        "services": [str(s) for s in route.services], "advertised": established,
    }
