"""The layer 2 announcer: the process-side shell around `planning` and `responder`.

`start()` opens packet sockets on every suitable interface before anything is
owned (hot standby); `update(view)` plans (pure), swaps the responder's owned
map, starts gratuitous bursts for what was taken and withdraws what was lost;
`tick(now)` sends due gratuitous frames, applies link changes from the netlink
watcher (a link that comes back is announced again), resolves duplicate
announcements (`conflicts`: the lower MAC keeps, the higher yields) and turns
the responder's counters into metric deltas. When members rejoin (a healed
partition, a restarted peer) every owned IP gets a fresh gratuitous burst, so
clients left on the other side's MAC come back at once. Everything outward
goes through the `AnnouncerHost`: this plugin uses nothing a third-party
plugin could not.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from plugins.layer2 import conflicts, frames
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
from plugins.layer2.planning import Ownership, Plan, plan
from plugins.layer2.responder import Duplicate, Responder
from supervisor.api import AnnouncerHost, AnnouncerView, IPAddress

PROTOCOL = "layer2"
REQUESTS = "metallb_layer2_requests_received"
RESPONSES = "metallb_layer2_responses_sent"
GRATUITOUS = "metallb_layer2_gratuitous_sent"
ANNOUNCED = "metallb_speaker_announced"
DUPLICATES = "metalloid_layer2_duplicate_announcements_total"
SOCKET_DROPS = "metalloid_layer2_socket_drops_total"
FAILOVER = "metalloid_failover_seconds"
_DOCS = {
    REQUESTS: "Number of layer2 requests received for owned IPs",
    RESPONSES: "Number of layer2 responses sent for owned IPs",
    GRATUITOUS: "Number of gratuitous layer2 packets sent for owned IPs",
    ANNOUNCED: "The node is announcing the service IP (1) over the protocol",
    DUPLICATES: "ARP replies, gratuitous ARPs or NAs from another MAC for an IP this node announces",
    SOCKET_DROPS: "ARP/NDP frames the kernel dropped because the responder's socket queue was full",
    FAILOVER: "Time from membership declaring an IP's previous owner dead (or leaving) to this node's first "
    "gratuitous ARP/NA for it",
}
# Log one duplicate (ip, mac) at most this often; the counter counts all.
DUPLICATE_LOG_SECONDS = 10.0
# /status lists a (ip, mac) conflict until it was last seen this long ago: long
# enough for an operator to catch a conflict that comes and goes, short enough
# that a fixed one leaves. At most MAX_DUPLICATES (newest first) are kept, so a
# flood of forged MACs cannot grow memory or /status without bound.
DUPLICATE_KEEP_SECONDS = 300.0
MAX_DUPLICATES = 256
NO_INTERFACE = "won the election but no suitable interface is open on this node"

IPKey = tuple[IPAddress, str]  # (ip, interface): the unit of gratuitous bursts


def _ip(packed: bytes) -> IPAddress:
    return ipaddress.ip_address(packed)


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
        self._responder = responder or Responder()
        self._binder = binder or LocalBinder()
        self._watcher = LinkWatcher(self._links_changed) if watch_links else None
        self._links: dict[str, Link] = {}
        self._pending_links: tuple[Link, ...] | None = None  # set by the watcher thread
        self._links_lock = threading.Lock()
        self._view: AnnouncerView | None = None
        self._plan: Plan | None = None
        self._owned: dict[IPAddress, tuple[Ownership, tuple[str, ...]]] = {}
        self._bound: set[IPAddress] = set()
        self._timer: GratuitousTimer[IPKey] = GratuitousTimer()
        self._conflicts = conflicts.Conflicts()
        # Yielded keys: an RFC 5227 probe every burst interval, whose answer
        # from the keeper holds the yield (see `conflicts`).
        self._probes: GratuitousTimer[IPKey] = GratuitousTimer(refresh=BURST_INTERVAL)
        self._flushed_requests: dict[bytes, int] = {}
        self._flushed_responses: dict[bytes, int] = {}
        # Packed IPs found not owned at the last flush: forgotten at the next.
        self._unowned_counted: set[bytes] = set()
        self._duplicates: dict[tuple[str, str], dict[str, Any]] = {}
        self._socket_drops: dict[str, int] = {}
        self._sockets_ready = False
        self._socket_errors: dict[str, str] = {}
        # IPs taken over from another node after a membership change, with the
        # monotonic time of that change and the time this node learned of it,
        # until their first gratuitous frame (see `_forget_takeovers`).
        self._failover_since: dict[IPAddress, tuple[float, float]] = {}

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
        self._plan = plan(view)
        now = self._clock()
        self._note_takeovers(previous_view, previous_plan, now)
        joined = view.members - previous_view.members if previous_view is not None else frozenset()
        if joined:
            # The election is authoritative again: yields and defences end.
            self._conflicts = conflicts.rejoined(now)
        elif self._took_over_from_leavers(previous_view, previous_plan):
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
        self._prune_duplicates(wall)
        self._send_due(now)
        self._flush_counters()

    def _send_due(self, now: float) -> None:
        for ip, ifname in self._timer.due(now):
            held = self._owned.get(ip)
            if held is not None and ifname in held[1]:  # never a frame for an IP not held
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
        for ip, (_, interfaces) in self._owned.items():
            for ifname in interfaces:
                self._timer.start((ip, ifname), now)
        self._host.log.info("layer2.rejoin joined=%s reassert=%d", ",".join(sorted(joined)), len(self._owned))

    def stop(self, *, handover: bool) -> None:
        for ip in list(self._owned):
            self._withdraw(ip)
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
        for ip, (_, interfaces) in self._owned.items():
            if ifname in interfaces:
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
        ports = self._responder.ports
        wanted: dict[IPAddress, tuple[Ownership, tuple[str, ...]]] = {}
        for own in self._plan.owned:
            names = own.interfaces or tuple(sorted(ports))
            wanted[own.ip] = (own, tuple(n for n in names if n in ports))
        self._conflicts = conflicts.retain(self._conflicts, [(ip, n) for ip, (_, ns) in wanted.items() for n in ns])
        yielded = self._conflicts.yielded
        wanted = {ip: (own, tuple(n for n in ns if (ip, n) not in yielded)) for ip, (own, ns) in wanted.items()}
        # Withdraw first so the responder never holds an IP that is gone.
        for ip in [ip for ip in self._owned if ip not in wanted or not wanted[ip][1]]:
            self._withdraw(ip)
        self._forget_takeovers(wanted, now)
        self._publish({ip: ifs for ip, (_, ifs) in wanted.items() if ifs})
        for ip, (own, interfaces) in wanted.items():
            if not interfaces:
                continue
            before = self._owned.get(ip)
            old_services = before[0].services if before else ()
            old_interfaces = before[1] if before else ()
            self._owned[ip] = (own, interfaces)
            for ifname in interfaces:
                if ifname not in old_interfaces:
                    self._timer.start((ip, ifname), now)
            for ifname in old_interfaces:
                if ifname not in interfaces:
                    self._timer.cancel((ip, ifname))
            for service in own.services:
                if service not in old_services:
                    self._host.gauge(ANNOUNCED, _DOCS[ANNOUNCED], self._announced_labels(str(service), ip), 1)
                    self._host.log.info(
                        "layer2.announce service=%s ip=%s interfaces=%s", service, ip, ",".join(interfaces)
                    )
            for service in old_services:
                if service not in own.services:
                    self._host.remove(ANNOUNCED, self._announced_labels(str(service), ip))
            self._bind(ip, own.bind_local)

    def _note_takeovers(self, previous_view: AnnouncerView | None, previous_plan: Plan | None, now: float) -> None:
        """Remember the IPs this node wins from another node because membership changed.

        A failover, for metalloid_failover_seconds: the members changed, and an
        IP another node won before is ours now. A first view (a start) or a
        config change that moves an IP is not one.
        """
        view, current = self._view, self._plan
        if view is None or current is None or previous_view is None or previous_plan is None:
            return
        changed_at = view.members_changed_at
        if changed_at is None or view.members == previous_view.members:
            return
        before = {entry.ip: entry.winner for entry in previous_plan.elections}
        node = self._host.node_name
        for own in current.owned:
            winner = before.get(own.ip)
            if own.ip not in self._owned and winner is not None and winner != node:
                self._failover_since[own.ip] = (changed_at, now)

    def _took_over_from_leavers(self, previous_view: AnnouncerView | None, previous_plan: Plan | None) -> bool:
        """Whether this view gives this node an IP that a member which just left won before.

        That member may be stopping gracefully (SIGTERM): it still answers,
        and re-asserts against our takeover, until its handover overlap ends.
        """
        if self._view is None or self._plan is None or previous_view is None or previous_plan is None:
            return False
        left = previous_view.members - self._view.members
        if not left:
            return False
        before = {entry.ip: entry.winner for entry in previous_plan.elections}
        return any(before.get(own.ip) in left for own in self._plan.owned)

    def _forget_takeovers(self, wanted: Mapping[IPAddress, object], now: float) -> None:
        """Drop takeovers that metalloid_failover_seconds must not time.

        An IP no longer won is not ours to time (winning it again later is a
        new story). A takeover noted more than one burst window ago whose first
        frame has still not gone out was held up by this node (no suitable
        interface open, the link down), not by failover: the frame that goes
        out when an interface finally appears would report that outage, maybe
        hours, as failover time. The age counts from when this node learned of
        the change, so a view that reached the announcer late is still timed.
        """
        for ip, (_, noted_at) in list(self._failover_since.items()):
            if ip not in wanted or now - noted_at > self._timer.duration:
                del self._failover_since[ip]

    def _publish(self, owned: Mapping[IPAddress, tuple[str, ...]]) -> None:
        v4 = {ip.packed: frozenset(ifs) for ip, ifs in owned.items() if ip.version == 4}
        v6 = {ip.packed: frozenset(ifs) for ip, ifs in owned.items() if ip.version == 6}
        self._responder.set_owned(v4, v6)
        watched: dict[IPAddress, set[str]] = {}
        for ip, ifname in self._conflicts.yielded:
            watched.setdefault(ip, set()).add(ifname)
        self._responder.set_watched(
            {ip.packed: frozenset(ifs) for ip, ifs in watched.items() if ip.version == 4},
            {ip.packed: frozenset(ifs) for ip, ifs in watched.items() if ip.version == 6},
        )

    def _withdraw(self, ip: IPAddress) -> None:
        own, interfaces = self._owned.pop(ip)
        self._publish({k: v[1] for k, v in self._owned.items()})
        for ifname in interfaces:
            self._timer.cancel((ip, ifname))
        self._failover_since.pop(ip, None)
        for service in own.services:
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
            self._host.counter(GRATUITOUS, _DOCS[GRATUITOUS], {"ip": str(ip)}, sent)
            taken = self._failover_since.pop(ip, None)
            if taken is not None and now - taken[1] <= self._timer.duration:
                seconds = max(0.0, now - taken[0])
                self._host.observe(FAILOVER, _DOCS[FAILOVER], {}, seconds)
                self._host.log.info("layer2.failover ip=%s seconds=%.3f", ip, seconds)

    # -- metrics and status -------------------------------------------------

    def _announce_reason(self, ip: IPAddress) -> str:
        reason = f"{self._host.node_name} won the election (MetalLB ranking)"
        for (held, ifname), d in self._conflicts.defended.items():
            if held == ip:
                reason += (f"; keeps it on {ifname} against {frames.mac_text(d.over_mac)} "
                           "(duplicate announcement in a split brain: the lower MAC keeps)")  # fmt: skip
        return reason + (f"; {yielded}" if (yielded := self._yield_reason(ip)) else "")

    def _yield_reason(self, ip: IPAddress) -> str | None:
        found = [(ifname, y) for (held, ifname), y in self._conflicts.yielded.items() if held == ip]
        if not found:
            return None
        where = ", ".join(f"to {frames.mac_text(y.to_mac)} on {ifname}" for ifname, y in found)
        hold = conflicts.YIELD_HOLD_SECONDS
        return (f"yielded {where}: a lower MAC announces it too (split brain); this node announces it again "
                f"{hold:.1f} s after that MAC was last heard, or when members rejoin")  # fmt: skip

    def _flush_counters(self) -> None:
        for name, current, flushed in (
            (REQUESTS, self._responder.requests, self._flushed_requests),
            (RESPONSES, self._responder.responses, self._flushed_responses),
        ):
            # A copy: the responder thread keeps writing the original.
            for packed, total in dict(current).items():
                delta = total - flushed.get(packed, 0)
                if delta > 0:
                    self._host.counter(name, _DOCS[name], {"ip": str(_ip(packed))}, delta)
                    flushed[packed] = total
        self._forget_counters()
        for ifname, dropped in self._responder.take_drops().items():
            self._socket_drops[ifname] = self._socket_drops.get(ifname, 0) + dropped
            self._host.counter(SOCKET_DROPS, _DOCS[SOCKET_DROPS], {"interface": ifname}, dropped)

    def _forget_counters(self) -> None:
        """Drop the per-IP counts of IPs no longer owned, once their last delta is flushed.

        Only the dicts shrink; the metric series keep their last values, as
        Prometheus counters must. An IP is forgotten one flush after it was
        first found not owned: the responder thread reads the owned map per
        frame, so by then it cannot be adding to the count we delete (a count
        it re-created would be flushed again whole). Owned again later, it
        counts from zero and the deltas stay right.
        """
        owned = {ip.packed for ip in self._owned}
        counts = (self._responder.requests, self._responder.responses, self._flushed_requests, self._flushed_responses)
        unowned = {packed for d in counts for packed in list(d) if packed not in owned}
        for packed in unowned & self._unowned_counted:
            for d in counts:
                d.pop(packed, None)
        self._unowned_counted = unowned - self._unowned_counted

    def _flush_duplicates(self, wall: float) -> list[Duplicate]:
        """Log, count and remember the claims the responder saw; returns them for `_resolve`."""
        queue = self._responder.duplicates
        seen_now: list[Duplicate] = []
        while queue:
            dup = queue.popleft()
            seen_now.append(dup)
            ip, mac = str(_ip(dup.ip)), frames.mac_text(dup.mac)
            seen = self._duplicates.get((ip, mac))
            if seen is None or wall - seen["last_logged"] >= DUPLICATE_LOG_SECONDS:
                self._host.log.warning("layer2.duplicate ip=%s mac=%s interface=%s", ip, mac, dup.interface)
                logged = wall
            else:
                logged = seen["last_logged"]
            self._duplicates[(ip, mac)] = {
                "ip": ip, "mac": mac, "interface": dup.interface,
                "count": (seen["count"] if seen else 0) + 1, "last_seen": wall, "last_logged": logged,
            }  # fmt: skip
            self._host.counter(DUPLICATES, _DOCS[DUPLICATES], {"ip": ip}, 1)
        return seen_now

    def _resolve(self, claims: list[Duplicate], now: float, wall: float) -> None:
        """Apply the split-brain rule (`conflicts`) to the claims seen, and end yields that expired."""
        state = self._conflicts
        changed = False
        for dup in claims:
            ip, port = _ip(dup.ip), self._responder.ports.get(dup.interface)
            held = self._owned.get(ip)
            # A claim read before a withdraw: no longer ours to keep or yield.
            if port is None or ((held is None or dup.interface not in held[1])
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

    def _prune_duplicates(self, wall: float) -> None:
        """Keep conflicts of IPs announced or yielded, seen within DUPLICATE_KEEP_SECONDS, newest MAX_DUPLICATES."""
        owned = {str(ip) for ip in self._owned} | {str(ip) for ip, _ in self._conflicts.yielded}
        fresh = [key for key, d in self._duplicates.items()
                 if key[0] in owned and wall - d["last_seen"] <= DUPLICATE_KEEP_SECONDS]  # fmt: skip
        if len(fresh) > MAX_DUPLICATES:
            fresh = sorted(fresh, key=lambda key: self._duplicates[key]["last_seen"])[-MAX_DUPLICATES:]
        if len(fresh) != len(self._duplicates):
            keep = set(fresh)
            self._duplicates = {key: d for key, d in self._duplicates.items() if key in keep}

    def status(self) -> Mapping[str, Any]:
        node = self._host.node_name
        announcements = [
            {
                "service": str(service), "ip": str(ip), "protocol": PROTOCOL, "node": node,
                "interfaces": list(interfaces), "reason": self._announce_reason(ip),
            }
            for ip, (own, interfaces) in sorted(self._owned.items(), key=lambda kv: (kv[0].version, int(kv[0])))
            for service in own.services
        ]  # fmt: skip
        elections = []
        failures: list[dict[str, str]] = []
        for entry in self._plan.elections if self._plan else ():
            reason = entry.not_announced_reason
            if reason is None and entry.winner == node and entry.ip not in self._owned:
                yield_reason = self._yield_reason(entry.ip)
                reason = yield_reason or NO_INTERFACE
                if yield_reason is None:  # won, and nothing to answer on: MetalLB's announceFailed
                    failures.append({"service": str(entry.service), "ip": str(entry.ip), "protocol": PROTOCOL,
                                     "node": node, "reason": NO_INTERFACE})
            elections.append(
                {
                    "service": str(entry.service), "ip": str(entry.ip), "winner": entry.winner,
                    "ranking": list(entry.election.ranking) if entry.election else [],
                    "excluded": [list(x) for x in entry.election.excluded] if entry.election else [],
                    # Why no node at all announces it; without an election the reason is the Service's own.
                    "not_served": entry.election.not_served if entry.election else entry.not_announced_reason,
                    "not_announced_reason": reason,
                }
            )  # fmt: skip
        interfaces = [
            {"name": name, "mac": frames.mac_text(port.mac), "ready": name in self._links and self._links[name].ready}
            for name, port in sorted(self._responder.ports.items())
        ]
        duplicates = [{k: v for k, v in d.items() if k != "last_logged"} for d in self._duplicates.values()]
        yielded = [
            {"ip": str(y.ip), "interface": y.interface, "to_mac": frames.mac_text(y.to_mac), "since": y.since}
            for y in self._conflicts.yielded.values()
        ]
        kept = [
            {"ip": str(d.ip), "interface": d.interface, "over_mac": frames.mac_text(d.over_mac), "since": d.since}
            for d in self._conflicts.defended.values()
        ]
        return {
            "announcements": announcements,
            "failures": failures,
            "elections": elections,
            "interfaces": interfaces,
            "sockets_ready": self._sockets_ready,
            "duplicates": duplicates,
            "yielded": yielded,
            "reasserted": kept,
            "bound_local": sorted(str(ip) for ip in self._bound),
            "socket_drops": dict(self._socket_drops),
            "socket_errors": dict(self._socket_errors),
        }
