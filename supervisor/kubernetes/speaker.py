"""The speaker's Kubernetes side: assignments from Service status, nodeAssigned / announceFailed Events.

The speaker never allocates. Its "allocation" is what the controller wrote
(`assignments.speaker_allocation`), sent on as an `AllocationDone` right after each
`ConfigLoaded`, so the supervisor and the announcers run exactly as in
standalone mode. When the API server is unreachable nothing new arrives and
the supervisor keeps routing the last state: announcing continues, and
failover (membership heartbeats) does not depend on the API.

`AnnouncementReporter` emits MetalLB's `nodeAssigned` Event when this node
starts announcing a Service and `announceFailed` when it won an IP it cannot
announce, both from the announcers' real state (`AnnouncerState`, passed on
by the announcer host), never from an election re-run here; on change only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from supervisor.announcing.api import AnnouncerState
from supervisor.config.model import ServiceKey
from supervisor.kubernetes import events, kinds

log = logging.getLogger(__name__)

Note = tuple[str, str, str]  # (type, reason, message)


def announcement_events(node: str, states: Iterable[AnnouncerState]) -> dict[tuple[ServiceKey, str], Note]:
    """The standing Event of each (Service, slot) from what the announcers really do.

    nodeAssigned for every Service this node announces (MetalLB's text), and
    announceFailed for every IP this node won but cannot announce (no
    interface to answer on), one slot per IP so both can stand at once.
    """
    notes: dict[tuple[ServiceKey, str], Note] = {}
    for state in states:
        for announcement in state.announcements:
            notes[(announcement.service, f"announce/{announcement.protocol}")] = (
                events.NORMAL, events.NODE_ASSIGNED,
                f"announcing from node {events.go_quote(node)} with protocol {events.go_quote(announcement.protocol)}",
            )  # fmt: skip
        for failure in state.failures:
            notes[(failure.service, f"failed/{failure.ip}")] = (
                events.WARNING, events.ANNOUNCE_FAILED,
                f"the interfaces specified by LB IP {events.go_quote(str(failure.ip))} doesn't exist in assigned node "
                f"{events.go_quote(node)} with protocol {events.go_quote(failure.protocol)}",
            )  # fmt: skip
    return notes


class AnnouncementReporter:
    """Writes the nodeAssigned / announceFailed Events when they start to hold (on change only)."""

    def __init__(self, recorder: events.EventRecorder, node_name: str) -> None:
        self.recorder = recorder
        self.node_name = node_name
        self._standing: set[tuple[ServiceKey, str]] = set()

    def update(
        self, states: Iterable[AnnouncerState], service_object: Callable[[ServiceKey], Mapping[str, Any] | None]
    ) -> tuple[int, bool]:
        """(Events written, whether everything stands); what failed (API down, not cached) is tried next time."""
        notes = announcement_events(self.node_name, states)
        written, unreported = 0, set()
        for (key, slot), (event_type, reason, message) in sorted(notes.items()):
            if (key, slot) in self._standing:
                continue
            obj = service_object(key)
            if obj is not None and self.recorder.record(obj, kinds.SERVICE, event_type, reason, message, slot=slot):
                written += 1
            elif obj is None or not self.recorder.reported("Service", key.namespace, key.name, slot=slot):
                unreported.add((key, slot))
        for key, slot in self._standing - set(notes):
            self.recorder.end("Service", key.namespace, key.name, slot=slot)
        self._standing = set(notes) - unreported
        return written, not unreported
