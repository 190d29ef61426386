"""The layer 2 announcer: the process-side shell around layer 2's pure modules.

`start()` opens packet sockets on every suitable interface before anything is
owned (hot standby); `update(view)` plans (`planning`), works out what this
node holds on which interfaces (`ownership`) and what was taken over from
another node (`takeover`), swaps the responder's owned map, starts gratuitous
bursts (`gratuitous`) for what was taken and withdraws what was lost;
`tick(now)` sends due gratuitous frames, applies link changes from the netlink
watcher (a link that comes back is announced again), resolves duplicate
announcements (`conflicts`: the lower MAC keeps, the higher yields; the record
of them is `duplicates`) and turns the responder's counters into metric deltas
(`stats`). When members rejoin (a healed partition, a restarted peer) every
owned IP gets a fresh gratuitous burst, so clients left on the other side's
MAC come back at once. `status()` is `status.report`. Everything outward goes
through the `AnnouncerHost`: this plugin uses nothing a third-party plugin
could not.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from plugins.layer2 import conflicts, frames, kernel_arp, ownership, status, takeover
from plugins.layer2.duplicates import Sightings
from plugins.layer2.gratuitous import BURST_INTERVAL, GratuitousTimer
from plugins.layer2.interfaces import (
    Link,
    LinkWatcher,
    exclude_from_env,
    exclude_from_file,
    exclude_list,
    read_links,
    unsuitable,
)
from plugins.layer2.localbind import LocalBinder
from plugins.layer2.ownership import Held, Key
from plugins.layer2.planning import Plan, plan
from plugins.layer2.responder import Duplicate, Responder
from plugins.layer2.stats import (
    ANNOUNCED,
    DOCS,
    DUPLICATES,
    FAILOVER,
    GRATUITOUS,
    REQUESTS,
    RESPONSES,
    SOCKET_DROPS,
    Counts,
)
from supervisor.api import AnnouncerHost, AnnouncerView, IPAddress

PROTOCOL = status.PROTOCOL


class Layer2Announcer:
    """Answers ARP and NDP for the IPs this node wins (MetalLB's layer 2 mode)."""

    protocol: ClassVar[str] = PROTOCOL

    def __init__(
        self,
        host: AnnouncerHost,
        *,
        exclude: tuple[str, ...] | None = None,
        responder: Responder | None = None,
        binder: LocalBinder | None = None,
        watch_links: bool = True,
        list_links: Callable[[], tuple[Link, ...]] = read_links,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._clock = clock
        self._wall_clock = wall_clock
        self._list_links = list_links
        # An explicit list (tests) is final; otherwise the environment and the
        # mounted ConfigMap are read once, like MetalLB's speaker, and the
        # config's Settings may change the list on every update.
        self._fixed_exclude = exclude
        self._env_exclude = exclude_from_env()
        self._mounted_exclude = exclude_from_file() if exclude is None else None
        self._exclude = exclude if exclude is not None else exclude_list(
            env=self._env_exclude, settings=None, mounted=self._mounted_exclude
        )
        self._responder = responder or Responder(**kernel_arp.for_responder())
        self._binder = binder or LocalBinder()
        self._watcher = LinkWatcher(self._links_changed) if watch_links else None
        self._links: dict[str, Link] = {}
        self._pending_links: tuple[Link, ...] | None = None  # set by the watcher thread
        self._links_lock = threading.Lock()
        self._view: AnnouncerView | None = None
        self._plan: Plan | None = None
        self._owned: dict[IPAddress, Held] = {}
        self._bound: set[IPAddress] = set()
        self._timer: GratuitousTimer[Key] = GratuitousTimer()
        self._conflicts = conflicts.Conflicts()
        # Yielded keys: an RFC 5227 probe every burst interval, whose answer
        # from the keeper holds the yield (see `conflicts`).
        self._probes: GratuitousTimer[Key] = GratuitousTimer(refresh=BURST_INTERVAL)
        self._counts = Counts()
        self._sightings = Sightings()
        self._socket_drops: dict[str, int] = {}
        self._sockets_ready = False
        self._socket_errors: dict[str, str] = {}
        # IPs taken over from another node after a membership change, until
        # their first gratuitous frame (see `takeover`).
        self._takeovers: takeover.Takeovers = {}

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        for ip in self._safe_leftovers():
            self._host.log.info("layer2.bind_local.leftover_removed ip=%s", ip)
        self._apply_links(self._list_links())
        self._responder.start()
        if self._watcher is not None:
            self._watcher.start()
        # Ready means every interface we should answer on has its sockets open.
        self._sockets_ready = not self._socket_errors
        self._host.log.info(
            "layer2.started node=%s interfaces=%s", self._host.node_name, ",".join(sorted(self._responder.ports))
        )
        in_kernel = self._responder.kernel_status()
        if in_kernel["unavailable"]:
            self._host.log.info("layer2.kernel_arp.off reason=%s (ARP is answered from user space)",
                                in_kernel["unavailable"])  # fmt: skip
        else:
            self._host.log.info("layer2.kernel_arp.on interfaces=%s", ",".join(in_kernel["interfaces"]))

    def _safe_leftovers(self) -> tuple[IPAddress, ...]:
        try:
            return self._binder.remove_leftovers()
        except Exception as exc:  # no permission, no netlink: report, keep answering
            self._host.log.warning("layer2.bind_local.cleanup_failed error=%s", exc)
            return ()

    def update(self, view: AnnouncerView) -> None:
        previous_view, previous_plan = self._view, self._plan
        self._view = view
        self._timer.set_refresh(view.config.settings.refresh_seconds)
        if self._fixed_exclude is None:
            self._exclude = exclude_list(env=self._env_exclude, settings=view.config.settings.interfaces_to_exclude,
                                         mounted=self._mounted_exclude)
        self._plan = current = plan(view)
        now = self._clock()
        self._takeovers.update(takeover.noted(
            node=self._host.node_name, previous_view=previous_view, previous_plan=previous_plan, view=view,
            current=current, owned=self._owned, now=now,
        ))  # fmt: skip
        joined = view.members - previous_view.members if previous_view is not None else frozenset()
        if joined:
            # The election is authoritative again: yields and defences end.
            self._conflicts = conflicts.rejoined(now)
        elif takeover.from_leavers(previous_view=previous_view, previous_plan=previous_plan, view=view,
                                   current=current):  # fmt: skip
            # The leaver may be stopping gracefully (SIGTERM): it still answers,
            # and re-asserts against our takeover, until its handover overlap ends.
            self._conflicts = conflicts.took_over(self._conflicts, now)
        elif previous_view is None and len(view.members) > 1:
            # Our first view since this node (re)started. A peer still
            # announcing an IP we now win is one whose membership has not
            # heard us rise yet (two heartbeats); it re-asserts against our
            # takeover, then withdraws. Yielding to it would leave the IP
            # unanswered for YIELD_HOLD_SECONDS (3.3 s) once it did.
            self._conflicts = conflicts.took_over(self._conflicts, now)
        self._sync_ports()
        self._reconcile(now)
        if joined:
            self._reassert_all(joined, now)
        # A takeover's first gratuitous frames go out now, not at the next
        # tick: on a failover every millisecond is client outage.
        self._send_due(now)

    def tick(self, now: float) -> None:
        with self._links_lock:
            pending, self._pending_links = self._pending_links, None
        if pending is not None:
            self._apply_links(pending, now=now)
            self._reconcile(now)
        wall = self._wall_clock()
        self._resolve(self._flush_duplicates(wall), now, wall)
        if len(self._sightings):  # none seen, none to prune: the texts of 1,000 IPs 20 times a second were
            # ~0.03 of a core on an idle node with 1,000 Services (py-spy)
            ours = {str(ip) for ip in self._owned} | {str(ip) for ip, _ in self._conflicts.yielded}
            self._sightings.prune(ours, wall)
        self._send_due(now)
        self._flush_counters()

    def _send_due(self, now: float) -> None:
        for ip, ifname in self._timer.due(now):
            held = self._owned.get(ip)
            if held is not None and ifname in held.interfaces:  # never a frame for an IP not held
                self._send_gratuitous(ip, ifname, now)
        for key in self._probes.due(now):
            if key in self._conflicts.yielded:
                self._send_probe(*key)
            else:
                self._probes.cancel(key)

    def _reassert_all(self, joined: frozenset[str], now: float) -> None:
        """Members came back: a fresh burst for every owned IP (cheap, idempotent).

        Its owner did not change, so nothing else would send one, and a client
        the other side of a healed partition moved to its MAC would stay there
        until its neighbour entry went stale.
        """
        for key in ownership.keys(self._owned):
            self._timer.start(key, now)
        self._host.log.info("layer2.rejoin joined=%s reassert=%d", ",".join(sorted(joined)), len(self._owned))

    def stop(self, *, handover: bool) -> None:
        self._withdraw(list(self._owned))
        self._responder.stop()
        if self._watcher is not None:
            self._watcher.stop()
        self._flush_counters()
        self._sockets_ready = False
        self._host.log.info("layer2.stopped node=%s handover=%s", self._host.node_name, handover)

    # -- links --------------------------------------------------------------

    def _links_changed(self, links: tuple[Link, ...]) -> None:
        with self._links_lock:
            self._pending_links = links

    def _apply_links(self, links: tuple[Link, ...], *, now: float | None = None) -> None:
        previous = self._links
        self._links = {lk.name: lk for lk in links}
        self._sync_ports()
        if now is None:
            return
        for name, link in self._links.items():
            old = previous.get(name)
            if link.ready and (old is None or not old.ready or old.mac != link.mac):
                self._reannounce(name, now)

    def _reannounce(self, ifname: str, now: float) -> None:
        for ip, held in self._owned.items():
            if ifname in held.interfaces:
                self._host.log.info("layer2.link.up interface=%s ip=%s reannounce=true", ifname, ip)
                self._timer.start((ip, ifname), now)

    def _wanted_ports(self) -> dict[str, Link]:
        named = self._plan.named_interfaces if self._plan else frozenset()
        return {
            name: link
            for name, link in self._links.items()
            if unsuitable(link, exclude=self._exclude, explicit=name in named) is None
        }

    def _sync_ports(self) -> None:
        wanted = self._wanted_ports()
        for name in set(self._responder.ports) - set(wanted):
            self._responder.close(name)
        for name, link in wanted.items():
            try:
                self._responder.open(name, link.index, link.mac)
                self._socket_errors.pop(name, None)
            except OSError as exc:
                self._socket_errors[name] = str(exc)
                self._host.log.warning("layer2.socket.failed interface=%s error=%s", name, exc)
        for name in set(self._socket_errors) - set(wanted):
            del self._socket_errors[name]
        if self._sockets_ready or self._socket_errors:
            self._sockets_ready = not self._socket_errors

    # -- announcing ---------------------------------------------------------

    def _reconcile(self, now: float) -> None:
        if self._plan is None or self._view is None:
            return
        candidates = ownership.wanted(self._plan, self._responder.ports)
        self._conflicts = conflicts.retain(self._conflicts, ownership.keys(candidates))
        wanted = ownership.without(candidates, self._conflicts.yielded)
        # Withdraw first so the responder never holds an IP that is gone.
        self._withdraw(ownership.withdrawn(self._owned, wanted))
        self._takeovers = takeover.forget(self._takeovers, wanted=wanted, now=now, window=self._timer.duration)
        self._publish(ownership.answering(wanted))
        for change in ownership.changes(self._owned, wanted):
            held = change.held
            ip = held.ownership.ip
            self._owned[ip] = held
            for ifname in change.started:
                self._timer.start((ip, ifname), now)
            for ifname in change.stopped:
                self._timer.cancel((ip, ifname))
            for service in change.announced:
                self._host.gauge(ANNOUNCED, DOCS[ANNOUNCED], self._announced_labels(str(service), ip), 1)
                self._host.log.info(
                    "layer2.announce service=%s ip=%s interfaces=%s", service, ip, ",".join(held.interfaces)
                )
            for service in change.unannounced:
                self._host.remove(ANNOUNCED, self._announced_labels(str(service), ip))
            self._bind(ip, held.ownership.bind_local)

    def _publish(self, owned: Mapping[IPAddress, tuple[str, ...]]) -> None:
        self._responder.set_owned(*ownership.packed(owned))
        self._responder.set_watched(*ownership.packed(ownership.by_ip(self._conflicts.yielded)))

    def _withdraw(self, ips: list[IPAddress]) -> None:
        if not ips:
            return
        gone = [(ip, self._owned.pop(ip)) for ip in ips]
        # One publish for all of them: each is a whole set_owned (and a kernel
        # map sync), so one per IP made a stop of 1,000 IPs O(n^2).
        self._publish(ownership.answering(self._owned))
        for ip, held in gone:
            for ifname in held.interfaces:
                self._timer.cancel((ip, ifname))
            self._takeovers.pop(ip, None)
            for service in held.ownership.services:
                self._host.remove(ANNOUNCED, self._announced_labels(str(service), ip))
                self._host.log.info("layer2.withdraw service=%s ip=%s", service, ip)
            self._bind(ip, False)

    def _announced_labels(self, service: str, ip: IPAddress) -> dict[str, str]:
        return {"service": service, "protocol": PROTOCOL, "node": self._host.node_name, "ip": str(ip)}

    def _bind(self, ip: IPAddress, wanted: bool) -> None:
        if wanted == (ip in self._bound):
            return
        try:
            if wanted:
                self._binder.bind(ip)
                self._bound.add(ip)
            else:
                self._bound.discard(ip)
                self._binder.unbind(ip)
        except Exception as exc:
            self._host.log.warning("layer2.bind_local.failed ip=%s wanted=%s error=%s", ip, wanted, exc)

    def _send_probe(self, ip: IPAddress, ifname: str) -> None:
        port = self._responder.ports.get(ifname)
        if port is not None:
            probe = frames.arp_probe(port.mac, ip.packed) if ip.version == 4 else frames.ns_probe(port.mac, ip.packed)
            self._responder.send(ifname, probe)

    def _send_gratuitous(self, ip: IPAddress, ifname: str, now: float) -> None:
        link = self._links.get(ifname)
        port = self._responder.ports.get(ifname)
        if port is None or (link is not None and not link.ready):
            return
        if ip.version == 4:
            batch: tuple[bytes, ...] = frames.gratuitous_arp(port.mac, ip.packed)
        else:
            batch = (frames.unsolicited_na(port.mac, ip.packed),)
        sent = sum(self._responder.send(ifname, frame) for frame in batch)
        if sent:
            self._host.counter(GRATUITOUS, DOCS[GRATUITOUS], {"ip": str(ip)}, sent)
            taken = self._takeovers.pop(ip, None)
            # Timed at the send, not at this turn's start: a takeover binds the IP first (sysctls, netlink).
            seconds = takeover.seconds(taken, now=self._clock(), window=self._timer.duration) if taken else None
            if seconds is not None:
                self._host.observe(FAILOVER, DOCS[FAILOVER], {}, seconds)
                self._host.log.info("layer2.failover ip=%s seconds=%.3f", ip, seconds)

    # -- conflicts, metrics and status --------------------------------------

    def _flush_counters(self) -> None:
        responder = self._responder
        kernel_requests, kernel_responses = responder.kernel_tick(self._clock())
        for name, current, in_kernel in ((REQUESTS, responder.requests, kernel_requests),
                                         (RESPONSES, responder.responses, kernel_responses)):  # fmt: skip
            for packed, delta in self._counts.deltas(name, current, in_kernel):
                self._host.counter(name, DOCS[name], {"ip": str(ipaddress.ip_address(packed))}, delta)
        self._counts.forget(
            {ip.packed for ip in self._owned},
            (responder.requests, responder.responses, kernel_requests, kernel_responses),
        )
        for ifname, dropped in self._responder.take_drops().items():
            self._socket_drops[ifname] = self._socket_drops.get(ifname, 0) + dropped
            self._host.counter(SOCKET_DROPS, DOCS[SOCKET_DROPS], {"interface": ifname}, dropped)

    def _flush_duplicates(self, wall: float) -> list[Duplicate]:
        """Log, count and remember the claims the responder saw; returns them for `_resolve`."""
        queue = self._responder.duplicates
        seen_now: list[Duplicate] = []
        while queue:
            dup = queue.popleft()
            seen_now.append(dup)
            ip, mac = str(ipaddress.ip_address(dup.ip)), frames.mac_text(dup.mac)
            if self._sightings.seen(ip=ip, mac=mac, interface=dup.interface, wall=wall):
                self._host.log.warning("layer2.duplicate ip=%s mac=%s interface=%s", ip, mac, dup.interface)
            self._host.counter(DUPLICATES, DOCS[DUPLICATES], {"ip": ip}, 1)
        return seen_now

    def _resolve(self, claims: list[Duplicate], now: float, wall: float) -> None:
        """Apply the split-brain rule (`conflicts`) to the claims seen, and end yields that expired."""
        state = self._conflicts
        changed = False
        for dup in claims:
            ip, port = ipaddress.ip_address(dup.ip), self._responder.ports.get(dup.interface)
            held = self._owned.get(ip)
            # A claim read before a withdraw: no longer ours to keep or yield.
            if port is None or ((held is None or dup.interface not in held.interfaces)
                                and (ip, dup.interface) not in state.yielded):  # fmt: skip
                continue
            out = conflicts.observe(state, ip=ip, interface=dup.interface, our_mac=port.mac, their_mac=dup.mac,
                                    now=now, wall=wall)  # fmt: skip
            state = out.conflicts
            for y in out.yielded:
                changed = True
                self._probes.start((y.ip, y.interface), now + self._probes.interval)
                self._host.log.warning(
                    "layer2.yield ip=%s to_mac=%s interface=%s our_mac=%s reason=split brain, the lower MAC keeps",
                    y.ip, frames.mac_text(y.to_mac), y.interface, frames.mac_text(port.mac),
                )  # fmt: skip
            for d in out.reasserted:
                self._timer.start((d.ip, d.interface), now)
                why = ("the lower MAC keeps" if port.mac < d.over_mac
                       else "members just rejoined or left, the election decides")
                self._host.log.warning(
                    "layer2.reassert ip=%s over_mac=%s interface=%s our_mac=%s reason=%s",
                    d.ip, frames.mac_text(d.over_mac), d.interface, frames.mac_text(port.mac), why,
                )  # fmt: skip
        out = conflicts.expire(state, now)
        for y in out.resumed:
            changed = True
            self._host.log.info("layer2.yield_expired ip=%s to_mac=%s interface=%s held_seconds=%.1f",
                                y.ip, frames.mac_text(y.to_mac), y.interface, conflicts.YIELD_HOLD_SECONDS)  # fmt: skip
        self._conflicts = out.conflicts
        if changed:
            self._reconcile(now)

    def status(self) -> Mapping[str, Any]:
        return status.report(
            node=self._host.node_name, plan=self._plan, owned=self._owned, state=self._conflicts,
            ports={name: port.mac for name, port in self._responder.ports.items()},
            ready={name for name, link in self._links.items() if link.ready},
            sockets_ready=self._sockets_ready, duplicates=self._sightings.report(), bound=self._bound,
            socket_drops=self._socket_drops, socket_errors=self._socket_errors,
            kernel_arp=self._responder.kernel_status(),
        )  # fmt: skip
