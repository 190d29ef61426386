"""The BGP stub announcer: computes BGP's sessions and routes, speaks no BGP yet.

The one declared stub of metalloid. It is a complete announcer for the host
(registered, started, updated, reported, stopped like layer 2) whose wire is a
record: the routes it would advertise to each peer, visible in `/status`,
`metalloid explain` and metrics. The real `bgp` plugin (plugins/bgp)
shares its pure planning (`plugins.bgp.planning.plan()`) and drives FRR with it;
this one stays as the interface's minimal reference, enabled explicitly
(`--announcers bgp-stub` or an AnnouncerConfig named `bgp-stub`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from plugins.bgp.frrmetrics import Exporter, SessionRef, samples
from plugins.bgp.planning import Plan, Route, plan
from plugins.bgp.speakermetrics import SPEAKER_ANNOUNCED, Series, announced_series, sync_announced
from supervisor.api import AnnouncerHost, AnnouncerView


class BGPStubAnnouncer:
    protocol: ClassVar[str] = "bgp-stub"

    def __init__(self, host: AnnouncerHost) -> None:
        self.host = host
        self.plan = Plan(sessions=(), routes=(), not_advertised=())
        self._announced: Series = frozenset()
        self._metrics = Exporter(host)

    def start(self) -> None:
        self.host.log.info("bgp.stub_started node=%s note=records-routes-speaks-no-bgp", self.host.node_name)

    def update(self, view: AnnouncerView) -> None:
        before = {(r.peer, str(r.prefix)) for r in self.plan.routes}
        self.plan = plan(view)
        after = {(r.peer, str(r.prefix)) for r in self.plan.routes}
        for peer, prefix in sorted(after - before):
            self.host.log.info("bgp.route_added peer=%s prefix=%s", peer, prefix)
        for peer, prefix in sorted(before - after):
            self.host.log.info("bgp.route_withdrawn peer=%s prefix=%s", peer, prefix)
        self._export_metrics(view)

    def _export_metrics(self, view: AnnouncerView) -> None:
        # The stub never establishes a session: the bgp announcer's series for sessions FRR does
        # not know (up 0, nothing advertised, every route it would advertise pending, no message
        # counters), with the same names and labels. Saying so is the truth.
        sessions = [SessionRef(address=s.neighbor, port=s.peer_port, vrf=s.vrf,
                               pending=sum(1 for r in self.plan.routes if r.peer == s.peer))
                    for s in self.plan.sessions]
        self._metrics.export(samples(sessions, (), ()))
        self._announced = sync_announced(self.host, self._announced, announced_series(self.plan, view.node_name))

    def tick(self, now: float) -> None:
        """Nothing is timed: a stub has no keepalives to send."""

    def status(self) -> dict[str, Any]:
        return {
            "stub": True,
            "sockets_ready": True,
            "sessions": [
                {
                    "peer": s.peer, "address": s.neighbor, "port": s.peer_port, "peer_asn": s.peer_asn,
                    "my_asn": s.my_asn, "router_id": s.router_id, "hold_time_seconds": s.hold_time_seconds,
                    "keepalive_time_seconds": s.keepalive_time_seconds, "ebgp_multihop": s.ebgp_multihop,
                    "password_set": s.password_set, "vrf": s.vrf,
                    "state": "Idle (stub: speaks no BGP)",
                }
                for s in self.plan.sessions
            ],
            "routes": [_route_json(r) for r in self.plan.routes],
            "announcements": [
                {"service": str(svc), "ip": str(r.prefix), "protocol": "bgp", "node": self.host.node_name,
                 "interfaces": [], "reason": f"would advertise to peer {r.peer}"}
                for r in self.plan.routes for svc in r.services
            ],
            "not_advertised": [{"service": str(k), "reason": why} for k, why in self.plan.not_advertised],
        }

    def stop(self, *, handover: bool) -> None:
        for labels in sorted(self._announced):
            self.host.remove(SPEAKER_ANNOUNCED, dict(labels))
        self._announced = frozenset()
        self._metrics.clear()
        self.plan = Plan(sessions=(), routes=(), not_advertised=())
        self.host.log.info("bgp.stub_stopped handover=%s", handover)


def _route_json(route: Route) -> dict[str, Any]:
    return {
        "peer": route.peer,
        "prefix": str(route.prefix),
        "next_hop": str(route.next_hop) if route.next_hop else None,
        "local_pref": route.local_pref,
        "communities": list(route.communities),
        "services": [str(s) for s in route.services],
    }
