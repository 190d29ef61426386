"""A complete third-party metalloid announcer: protocol "example", routes kept in a directory.

It stands for an announcer that keeps state outside its process (routes in a
BGP daemon, entries in a cloud router's API): for every IP this node wins it
creates one "route" file in a directory, and removes it on withdraw. It uses
every part of the plugin contract, importing only `supervisor.api`:

- settings from its AnnouncerConfig (`host.settings`), checked by the
  `metalloid_validate_config` hook with FILE:LINE diagnostics (`setting_error`);
- layer 2's policy (one node per IP, MetalLB's ranking) with the public
  election helpers;
- retries: a failed write is retried from `tick()` with a doubling delay,
  up to `spec.settings.retries` times, then the announcer raises and the host
  restarts it (and marks it FAILED if that keeps happening);
- readiness: `sockets_ready` is False until the directory is usable and while
  a write is being retried, so the node's /readyz says so;
- cleanup after a SIGKILL: each route is remembered (`host.remember`) before
  it is created, and `recover(previous)` removes every route the killed
  process may have left.

    apiVersion: metalloid.io/v1alpha1
    kind: AnnouncerConfig
    metadata: {name: example}
    spec:
      settings:
        directory: /run/example/{node}      # absolute, {node} = this node; created if missing
        retries: 3                          # optional, 0-10 (default 3)

See docs/plugins.md for the walk-through.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from supervisor.api import (
    Announcement,
    AnnouncementStatus,
    AnnouncerHost,
    AnnouncerRegistry,
    AnnouncerStatus,
    AnnouncerView,
    Assignment,
    Config,
    Diagnostic,
    Previous,
    elect_layer2,
    eligibility,
    hookimpl,
    setting_error,
)

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 4)

PROTOCOL = "example"
ANNOUNCED = "metallb_speaker_announced"
ANNOUNCED_HELP = ("Services being announced from this node. This is desired state, "
                  "it does not guarantee that the routing protocols have converged.")
RETRIES = "metalloid_example_retries_total"
DEFAULT_RETRIES = 3
FIRST_RETRY_SECONDS = 0.1

Route = tuple[str, str]  # (service "namespace/name", ip)


class ExampleAnnouncer:
    """Keeps one route file per IP this node wins in `spec.settings.directory`."""

    protocol: ClassVar[str] = PROTOCOL

    def __init__(self, host: AnnouncerHost) -> None:
        self.host = host
        settings = host.settings
        self.directory = str(settings.get("directory") or "").replace("{node}", host.node_name)
        self.retries = int(settings.get("retries", DEFAULT_RETRIES))
        self.routes: dict[Route, Announcement] = {}  # created in the directory
        self.wanted: dict[Route, Announcement] = {}  # what the last view says
        self.failures: dict[Route, tuple[int, float]] = {}  # failed writes: (attempts, retry at)
        self.ready = False

    # --- the Announcer Protocol ------------------------------------------------

    def start(self) -> None:
        # Raising fails the start: the host reports it and restarts this process.
        if not self.directory:
            raise ValueError("AnnouncerConfig/example: spec.settings.directory is not set")
        os.makedirs(self.directory, exist_ok=True)  # NotADirectoryError, PermissionError: fail loudly
        self.ready = True
        self.host.log.info("example.started node=%s directory=%s", self.host.node_name, self.directory)

    def recover(self, previous: Previous) -> None:
        """The last process was killed: remove every route it may have created (idempotent)."""
        remembered = previous.remembered if isinstance(previous.remembered, dict) else {}
        stale = {(str(s), str(ip)) for s, ip in remembered.get("routes", [])}
        stale |= {(a["service"], a["ip"]) for a in previous.announcements}
        for route in sorted(stale):
            self._delete(route)
        self.host.log.info("example.recovered removed=%d", len(stale))

    def update(self, view: AnnouncerView) -> None:
        """Reconcile: a route for each IP this node wins, none for anything else."""
        wanted = {}
        for assignment in view.assignments:
            announcement = self._decide(view, assignment)
            if announcement is not None:
                wanted[(str(announcement.service), str(announcement.ip))] = announcement
        self.wanted = wanted
        for route in sorted(self.routes.keys() - wanted.keys()):
            self._withdraw(route)
        for route in sorted(wanted.keys() - self.routes.keys()):
            self._announce(route, wanted[route])

    def tick(self, now: float) -> None:
        for route, (attempts, due) in sorted(self.failures.items()):
            if now >= due and route in self.wanted:
                self.host.counter(RETRIES, "Route writes the example announcer retried", {})
                self._announce(route, self.wanted[route], attempts=attempts, now=now)
            elif route not in self.wanted:
                del self.failures[route]

    def status(self) -> AnnouncerStatus:
        return {
            "announcements": [_as_status(a) for _, a in sorted(self.routes.items())],
            "sockets_ready": self.ready and not self.failures,
            "directory": self.directory,
            "retrying": [f"{service} {ip}" for service, ip in sorted(self.failures)],
        }

    def stop(self, *, handover: bool) -> None:
        for route in sorted(self.routes):
            self._withdraw(route)
        self.host.log.info("example.stopped handover=%s", handover)

    # --- the policy ------------------------------------------------------------

    def _decide(self, view: AnnouncerView, assignment: Assignment) -> Announcement | None:
        """Layer 2's policy: this node announces the IP when it ranks first."""
        service = view.config.service(assignment.service)
        advertisements = view.config.l2_advertisements_for(assignment.pool)
        if service is None or not advertisements or not assignment.ips:
            return None
        selectors = () if any(not a.node_selectors for a in advertisements) else tuple(
            s for a in advertisements for s in a.node_selectors)
        eligible = eligibility(view.config, service, node_selectors=selectors, members=view.members)
        election = elect_layer2(eligible, assignment.ips[0])
        if election.winner != view.node_name:
            return None
        return Announcement(service=assignment.service, ip=assignment.ips[0], protocol=self.protocol,
                            node=view.node_name, reason=f"first of {len(election.ranking)} in MetalLB's ranking")

    # --- effects: the routes, metrics -----------------------------------------

    def _announce(self, route: Route, announcement: Announcement, *, attempts: int = 0, now: float = 0.0) -> None:
        # Write-ahead: if we are killed between these two lines, recover() still knows the route.
        self.host.remember({"routes": sorted({*self.routes, route})})
        try:
            with open(self._path(route), "w") as handle:
                json.dump({"service": route[0], "ip": route[1], "node": announcement.node}, handle)
        except OSError as exc:
            if attempts >= self.retries:
                raise RuntimeError(f"route {route[0]} {route[1]}: {exc}; gave up after {attempts} retries") from exc
            self.failures[route] = (attempts + 1, now + FIRST_RETRY_SECONDS * 2 ** attempts)
            self.host.log.warning("example.write_failed service=%s ip=%s error=%s", route[0], route[1], exc)
            return
        self.failures.pop(route, None)
        self.routes[route] = announcement
        self.host.gauge(ANNOUNCED, ANNOUNCED_HELP, self._labels(route), 1)
        self.host.log.info("example.announce service=%s ip=%s", route[0], route[1])

    def _withdraw(self, route: Route) -> None:
        self._delete(route)
        self.routes.pop(route, None)
        self.host.remember({"routes": sorted(self.routes)})
        self.host.remove(ANNOUNCED, self._labels(route))
        self.host.log.info("example.withdraw service=%s ip=%s", route[0], route[1])

    def _delete(self, route: Route) -> None:
        try:
            os.unlink(self._path(route))
        except FileNotFoundError:
            pass

    def _path(self, route: Route) -> str:
        return os.path.join(self.directory, f"{route[0].replace('/', '_')}_{route[1]}.json")

    def _labels(self, route: Route) -> dict[str, str]:
        return {"service": route[0], "protocol": self.protocol, "node": self.host.node_name, "ip": route[1]}


def _as_status(a: Announcement) -> AnnouncementStatus:
    return {"service": str(a.service), "ip": str(a.ip), "protocol": a.protocol, "node": a.node,
            "interfaces": list(a.interfaces), "reason": a.reason}


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(ExampleAnnouncer)


@hookimpl
def metalloid_validate_config(config: Config) -> list[Diagnostic]:
    """Check our AnnouncerConfig's spec.settings; pure, no I/O (the directory is checked by start())."""
    announcer = config.announcer(PROTOCOL)
    if announcer is None:
        return []
    settings: dict[str, Any] = announcer.settings
    problems = []
    directory = settings.get("directory")
    if not isinstance(directory, str) or not directory:
        problems.append(setting_error(announcer, "directory", "is missing; set the absolute path of the "
                                                              "directory the routes are kept in"))
    elif not os.path.isabs(directory):
        problems.append(setting_error(announcer, "directory", f"{directory!r} is relative; write an absolute path "
                                                              f"such as /run/metalloid-example"))
    retries = settings.get("retries", DEFAULT_RETRIES)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        problems.append(setting_error(announcer, "retries", f"{retries!r} is not a whole number from 0 to 10"))
    for key in sorted(settings.keys() - {"directory", "retries"}):
        problems.append(setting_error(announcer, key, "is not a setting of the example announcer; "
                                                      "it has directory and retries"))
    return problems
