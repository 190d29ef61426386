"""The announcer host: the process shell around one announcer plugin.

One process per enabled protocol, so a plugin that raises, leaks or hangs is
contained: its exception is reported (`WorkerFailed`) and the process exits
non-zero, its hang stops its heartbeats; either way the supervisor restarts
this process alone and every other announcer keeps announcing.

Inside the child (a PluginManager does not pickle, so it is never built in the
supervisor): load the plugins (`supervisor.plugins_loader`), collect their
announcer classes through `metalloid_register_announcers`, build the one for
`settings.protocol` with a `QueueHost`, `start()` it, then loop:

    ViewChanged      → update(view) → status() → StatusReport
    every 50 ms      → tick(now)    → status() → StatusReport when it changed
    Control.STOP     → stop(handover=True), last StatusReport, exit 0

Plugins talk outward only through the `AnnouncerHost` they were given; its
metric calls become `MetricUpdate`s on the outbox (workers never import
prometheus_client; the supervisor owns the registry).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from supervisor.announcing.api import Announcer, AnnouncerRegistry
from supervisor.config.model import ServiceKey
from supervisor.messages import (
    FromWorker,
    MetricKind,
    MetricOp,
    MetricUpdate,
    StatusReport,
    ToWorker,
    ViewChanged,
)
from supervisor.supervising.child import Inbox, Outbox, serve
from supervisor.supervising.settings import WorkerSettings

log = logging.getLogger(__name__)


class QueueHost:
    """The `AnnouncerHost` a plugin gets: facts about this node, metrics onto the outbox."""

    def __init__(self, *, node_name: str, protocol: str, outbox: Outbox) -> None:
        self._node_name = node_name
        self._outbox = outbox
        self._log = logging.getLogger(f"metalloid.plugin.{protocol}")

    @property
    def node_name(self) -> str:
        return self._node_name

    @property
    def log(self) -> logging.Logger:
        return self._log

    def counter(self, name: str, documentation: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        self._put(name, MetricKind.COUNTER, documentation, labels, MetricOp.INC, value)

    def gauge(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self._put(name, MetricKind.GAUGE, documentation, labels, MetricOp.SET, value)

    def observe(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self._put(name, MetricKind.HISTOGRAM, documentation, labels, MetricOp.OBSERVE, value)

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        # The kind is irrelevant for a removal; the registry knows the family.
        self._put(name, MetricKind.GAUGE, "", labels, MetricOp.REMOVE, 0.0)

    def _put(self, name: str, kind: MetricKind, doc: str, labels: Mapping[str, str], op: MetricOp,
             value: float) -> None:
        self._outbox.put(MetricUpdate(name=name, kind=kind, documentation=doc,
                                      labels=tuple((str(k), str(v)) for k, v in labels.items()),
                                      op=op, value=float(value)))


def jsonable(value: Any) -> Any:
    """A plugin's status made JSON-ready (dataclasses, IPs, keys, enums, tuples)."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ServiceKey)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def build_announcer(protocol: str, host: QueueHost) -> Announcer:
    """Load the plugins and build the announcer registered for `protocol`."""
    from supervisor.plugins_loader import build_plugin_manager

    pm = build_plugin_manager()
    registry = AnnouncerRegistry()
    pm.hook.metalloid_register_announcers(registry=registry)
    factory = registry.get(protocol)
    if factory is None:
        known = ", ".join(registry.names()) or "none"
        raise LookupError(f"no installed plugin registers announcer protocol {protocol!r} (registered: {known}); "
                          f"install the plugin or fix --announcers")
    return factory(host)


class HostCore:
    """Drives one announcer; every call into the plugin happens here."""

    def __init__(self, *, worker: str, announcer: Announcer) -> None:
        self.worker = worker
        self.announcer = announcer
        self._last_status: Any = None

    def handle(self, message: ToWorker) -> Iterator[FromWorker]:
        match message:
            case ViewChanged(view=view):
                log.debug("announcer.update generation=%d assignments=%d members=%d", view.generation,
                          len(view.assignments), len(view.members))
                self.announcer.update(view)
                yield from self.report(force=True)
            case _:
                log.debug("announcer.ignored message=%s", type(message).__name__)

    def tick(self, now: float) -> Iterator[FromWorker]:
        self.announcer.tick(now)
        yield from self.report(force=False)

    def report(self, *, force: bool) -> Iterator[FromWorker]:
        payload = jsonable(self.announcer.status())
        if force or payload != self._last_status:
            self._last_status = payload
            yield StatusReport(worker=self.worker, payload=payload)


def run(settings: WorkerSettings, inbox: Inbox, outbox: Outbox) -> None:
    protocol = settings.protocol
    if not protocol:
        raise ValueError(f"announcer worker {settings.name} has no protocol")
    host = QueueHost(node_name=settings.node_name, protocol=protocol, outbox=outbox)
    announcer = build_announcer(protocol, host)
    core = HostCore(worker=settings.name, announcer=announcer)
    announcer.start()
    log.info("announcer.started protocol=%s node=%s", protocol, settings.node_name)
    for message in core.report(force=True):
        outbox.put(message)
    serve(settings, inbox, outbox, core.handle, tick=core.tick, tick_seconds=settings.tick_seconds)
    # Control.STOP: a graceful stop, peers take over now.
    announcer.stop(handover=True)
    for message in core.report(force=True):
        outbox.put(message)
    log.info("announcer.stopped protocol=%s handover=true", protocol)
