"""A complete, minimal third-party metalloid announcer: protocol "example".

It announces nothing on a wire. It shows every part of the plugin contract
using only `supervisor.api` (the public plugin API):

- the `metalloid_register_announcers` hook registers the announcer class;
- the announcer implements the `Announcer` Protocol: start, update, tick,
  status, stop;
- its policy is layer 2's (one node per IP, MetalLB's ranking among the live
  nodes selected by the L2Advertisements covering the pool), computed with the
  host's public election helpers;
- it "announces" by writing what it would announce to the JSON file named by
  the environment variable METALLOID_EXAMPLE_OUT (atomically: write a
  temporary file, then rename), or only logs it when that is unset;
- it reports metrics (metallb_speaker_announced, one counter of its own) and
  its status through the host.

See docs/plugins.md for the walk-through. Install: `pip install -e examples/thirdparty`;
enable: `metalloid run --announcers layer2,example ...`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any, ClassVar

from supervisor.api import (
    Announcement,
    AnnouncerHost,
    AnnouncerRegistry,
    AnnouncerView,
    Assignment,
    elect_layer2,
    eligibility,
    hookimpl,
)

ANNOUNCED = "metallb_speaker_announced"
ANNOUNCED_HELP = ("Services being announced from this node. This is desired state, "
                  "it does not guarantee that the routing protocols have converged.")
UPDATES = "metalloid_example_updates_total"


class ExampleAnnouncer:
    """Writes the IPs this node would announce to a JSON file; no packets."""

    protocol: ClassVar[str] = "example"

    def __init__(self, host: AnnouncerHost) -> None:
        self.host = host
        self.out_path = os.environ.get("METALLOID_EXAMPLE_OUT") or None
        self.announcements: dict[tuple[str, str], Announcement] = {}
        self.generation = 0
        self.updates = 0
        self.started = False

    # --- the Announcer Protocol ------------------------------------------------

    def start(self) -> None:
        # A real announcer opens its sockets here. Raising fails the start; the
        # host reports the error in /status and restarts this process.
        if self.out_path:
            directory = os.path.dirname(os.path.abspath(self.out_path))
            if not os.path.isdir(directory):
                raise FileNotFoundError(f"METALLOID_EXAMPLE_OUT={self.out_path}: directory {directory} does not exist")
        self.started = True
        self._write()
        self.host.log.info("example.started node=%s out=%s", self.host.node_name, self.out_path)

    def update(self, view: AnnouncerView) -> None:
        """Reconcile: announce what this node wins, withdraw everything else."""
        wanted: dict[tuple[str, str], Announcement] = {}
        for assignment in view.assignments:
            announcement = self._decide(view, assignment)
            if announcement is not None:
                wanted[(str(announcement.service), str(announcement.ip))] = announcement
        for key in self.announcements.keys() - wanted.keys():
            self._withdraw(self.announcements[key])
        for key in wanted.keys() - self.announcements.keys():
            self._announce(wanted[key])
        self.announcements = wanted
        self.generation = view.generation
        self.updates += 1
        self.host.counter(UPDATES, "Views the example announcer reconciled", {})
        self._write()

    def tick(self, now: float) -> None:
        # No timers: a real announcer re-sends gratuitous packets here.
        pass

    def status(self) -> Mapping[str, Any]:
        return {
            "announcements": [_as_dict(a) for _, a in sorted(self.announcements.items())],
            "generation": self.generation,
            "updates": self.updates,
            "out": self.out_path,
        }

    def stop(self, *, handover: bool) -> None:
        for announcement in self.announcements.values():
            self._withdraw(announcement)
        self.announcements = {}
        self._write()
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

    # --- effects: metrics, the file --------------------------------------------

    def _announce(self, a: Announcement) -> None:
        self.host.gauge(ANNOUNCED, ANNOUNCED_HELP, self._labels(a), 1)
        self.host.log.info("example.announce service=%s ip=%s", a.service, a.ip)

    def _withdraw(self, a: Announcement) -> None:
        self.host.remove(ANNOUNCED, self._labels(a))
        self.host.log.info("example.withdraw service=%s ip=%s", a.service, a.ip)

    def _labels(self, a: Announcement) -> dict[str, str]:
        return {"service": str(a.service), "protocol": self.protocol, "node": a.node, "ip": str(a.ip)}

    def _write(self) -> None:
        if not self.out_path:
            return
        document = {"node": self.host.node_name, **self.status()}
        directory = os.path.dirname(os.path.abspath(self.out_path))
        fd, temporary = tempfile.mkstemp(prefix=".example-", dir=directory)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
        # rename is atomic: a reader sees the old or the new file, never half of one.
        os.replace(temporary, self.out_path)


def _as_dict(a: Announcement) -> dict[str, Any]:
    return {"service": str(a.service), "ip": str(a.ip), "protocol": a.protocol, "node": a.node,
            "interfaces": list(a.interfaces), "reason": a.reason}


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(ExampleAnnouncer)
