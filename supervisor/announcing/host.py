"""The announcer host: the process shell around one announcer plugin.

One process per enabled protocol, so a plugin that raises, leaks or hangs is
contained: its exception is reported (`WorkerFailed`) and the process exits
non-zero, its hang stops its heartbeats; either way the supervisor restarts
this process alone and every other announcer keeps announcing.

Inside the child (a PluginManager does not pickle, so it is never built in the
supervisor): load the plugins (`supervisor.plugins_loader`), collect their
announcer classes through `metalloid_register_announcers`, build the one for
`settings.protocol` with a `QueueHost`, `start()` it, `recover(previous)` it
when the last process of this announcer did not stop cleanly (`recovery`),
then loop:

    ViewChanged      → update(view) → status() → StatusReport (+ persisted for recover)
    every 50 ms      → tick(now); every REPORT_SECONDS → status() → StatusReport when it changed
    Control.STOP     → stop(handover=True), last StatusReport, forget the recovery file, exit 0
    and after a ViewChanged or a tick, AnnouncementsChanged when the plugin's
    "announcements" or "failures" changed (what it really announces, for the
    speaker), from its first view on (before it, "nothing" means "not told
    yet"), in Kubernetes mode only (standalone has no one to tell)

Every StatusReport carries the host's own "_host" key: the plugins that failed
to load (name, hook, reason) and the ways `status()` breaks the
`AnnouncerStatus` contract, for /status "plugin_errors".

Plugins talk outward only through the `AnnouncerHost` they were given; its
metric calls become `MetricUpdate`s on the outbox (workers never import
prometheus_client; the supervisor owns the registry).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from supervisor.announcing.api import (
    Announcer,
    AnnouncerRegistry,
    AnnouncerState,
    Recoverable,
    SecretUnavailable,
    announcer_state,
)
from supervisor.announcing.recovery import RecoveryStore
from supervisor.config.model import ServiceKey
from supervisor.messages import (
    AnnouncementsChanged,
    FromWorker,
    MetricKind,
    MetricOp,
    MetricUpdate,
    StatusReport,
    ToWorker,
    ViewChanged,
)
from supervisor.plugins_loader import PluginLoadFailure, build_plugin_manager
from supervisor.roles import Mode
from supervisor.supervising.child import Inbox, Outbox, serve
from supervisor.supervising.settings import AnnouncerSettings

log = logging.getLogger(__name__)


class QueueHost:
    """The `AnnouncerHost` a plugin gets: facts about this node, metrics onto the outbox."""

    def __init__(self, *, node_name: str, protocol: str, outbox: Outbox, settings: Mapping[str, Any] | None = None,
                 store: RecoveryStore | None = None, mode: Mode = Mode.STANDALONE,
                 secrets: Callable[[str, str], Mapping[str, bytes]] | None = None) -> None:
        self._node_name = node_name
        self._outbox = outbox
        self._log = logging.getLogger(f"metalloid.plugin.{protocol}")
        self._settings = dict(settings or {})
        self._store = store or RecoveryStore(None)
        self._mode = mode
        self._secrets = secrets

    @property
    def mode(self) -> str:
        return self._mode.value

    def read_secret(self, namespace: str, name: str) -> Mapping[str, bytes]:
        if self._secrets is None:
            raise SecretUnavailable(0, f"Secret {namespace}/{name}: there is no Kubernetes API in {self.mode} "
                                       "mode; read the value from a file instead")
        return self._secrets(namespace, name)

    @property
    def settings(self) -> Mapping[str, Any]:
        return self._settings

    def remember(self, value: Any) -> None:
        self._store.remember(jsonable(value))

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


# Exactly these types are JSON as they are (not their subclasses: a str enum becomes its value).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """A plugin's status made JSON-ready (dataclasses, IPs, keys, enums, tuples).

    The host calls it on the whole status at every tick (50 ms); with 1,000
    Services that was ~40 ms of CPU each time through the generic checks below,
    so plain dicts, lists and scalars, nearly everything in a status, take a
    path of exact type checks first (the same result: tests/test_announcer_host.py).
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {key if type(key) is str else str(key): item if type(item) in _PLAIN else jsonable(item)
                for key, item in value.items()}
    if kind is list or kind is tuple:
        return [item if type(item) in _PLAIN else jsonable(item) for item in value]
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
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


def build_announcer(protocol: str, host: QueueHost,
                    failures: list[PluginLoadFailure] | None = None) -> Announcer:
    """Load the plugins and build the announcer registered for `protocol`.

    `failures` collects the plugins that failed to load; when none registers
    `protocol`, the error names them (the plugin and hook at fault).
    """
    failures = [] if failures is None else failures
    pm = build_plugin_manager(failures=failures)
    registry = AnnouncerRegistry()
    pm.hook.metalloid_register_announcers(registry=registry)
    factory = registry.get(protocol)
    if factory is None:
        known = ", ".join(registry.names()) or "none"
        broken = "".join(f"; {f}" + (f" (hook {f.hook})" if f.hook else "") for f in failures)
        raise LookupError(f"no installed plugin registers announcer protocol {protocol!r} (registered: {known})"
                          f"{broken}; install or fix the plugin, or fix --announcers / the AnnouncerConfig")
    return factory(host)


def status_problems(payload: Any) -> list[str]:
    """How a (jsonable) status() breaks the `AnnouncerStatus` contract; [] when it keeps it."""
    if not isinstance(payload, Mapping):
        return [f"returned {type(payload).__name__}, not a mapping"]
    problems = []
    announcements = payload.get("announcements")
    if not isinstance(announcements, list):
        problems.append('has no "announcements" list')
    else:
        for index, entry in enumerate(announcements):
            missing = [k for k in ("service", "ip", "protocol", "node")
                       if not isinstance(entry, Mapping) or not isinstance(entry.get(k), str)]
            if missing:
                problems.append(f'announcements[{index}] lacks string field(s) {", ".join(missing)}')
                break
    if "sockets_ready" in payload and not isinstance(payload["sockets_ready"], bool):
        problems.append('"sockets_ready" is not true or false')
    return problems


# The process's ticks (50 ms) drive the plugin's timers; whether its status changed is looked at
# at most this often between views: building, converting and comparing a 1,000-IP layer 2 status
# is ~15 ms of CPU, a quarter of a core at every tick. A view's report is never held back.
REPORT_SECONDS = 0.25
# ... and at most this share of a core: the looks between views wait longer once one costs more
# than LOOK_SHARE * REPORT_SECONDS. With 1,000 Services a look (status(), jsonable, compare) is
# 25-35 ms of CPU, so every 0.25 s was 0.1-0.14 of a core, most of what the layer 2 announcer spent
# while nothing happened (bench/runtime.py's node, py-spy), taken from the supervisor and the
# allocator on a 2-core node during a reload; at this share a change that comes without a view
# (a link, a conflict) shows in /status within ~0.6 s instead of 0.25 s.
LOOK_SHARE = 0.05


class HostCore:
    """Drives one announcer; every call into the plugin happens here.

    `report_every`: the least time between two looks at the status from `tick`
    (0: at every tick, as the plugin test kit drives it; the process: REPORT_SECONDS),
    longer while a look costs more than LOOK_SHARE of it (`cpu_clock`: the
    look's CPU time; a fake in tests).
    """

    def __init__(self, *, worker: str, announcer: Announcer, store: RecoveryStore | None = None,
                 load_failures: list[PluginLoadFailure] | None = None, report_every: float = 0.0,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self.worker = worker
        self.announcer = announcer
        self._report_every = report_every
        self._look_every = report_every
        self._cpu_clock = cpu_clock
        self._looked_at: float | None = None
        self.store = store or RecoveryStore(None)
        self._load_failures = [f.as_dict() for f in load_failures or []]
        self._last_status: Any = None
        self._reported_problems: list[str] = []
        self._last_state: AnnouncerState | None = None
        self._viewed = False  # the plugin has had a view: its state is an answer, not its empty start
        # Only the speaker's watcher reads AnnouncementsChanged (ServiceL2Status, Events); standalone,
        # the supervisor would unpickle ~3,000 objects per change of 1,000 IPs to keep them unread.
        self._passes_state_on = False

    def handle(self, message: ToWorker) -> Iterator[FromWorker]:
        match message:
            case ViewChanged(view=view):
                log.debug("announcer.update generation=%d assignments=%d members=%d", view.generation,
                          len(view.assignments), len(view.members))
                self.announcer.update(view)
                self._viewed = True
                self._passes_state_on = view.mode == Mode.KUBERNETES
                yield from self.report(force=True)
            case _:
                log.debug("announcer.ignored message=%s", type(message).__name__)

    def tick(self, now: float) -> Iterator[FromWorker]:
        self.announcer.tick(now)
        if self._looked_at is not None and now - self._looked_at < self._look_every:
            return
        self._looked_at = now
        started = self._cpu_clock()
        payload = jsonable(self.announcer.status())
        changed = payload != self._last_status
        if self._report_every:
            self._look_every = max(self._report_every, (self._cpu_clock() - started) / LOOK_SHARE)
        if changed:
            yield from self._send(payload)

    def report(self, *, force: bool) -> Iterator[FromWorker]:
        payload = jsonable(self.announcer.status())
        if force or payload != self._last_status:
            yield from self._send(payload)

    def _send(self, payload: Any) -> Iterator[FromWorker]:
        self._last_status = payload
        problems = status_problems(payload)
        if problems != self._reported_problems:
            self._reported_problems = problems
            if problems:
                log.warning("announcer.status_invalid worker=%s problems=%s", self.worker, "; ".join(problems))
        announcements = payload.get("announcements") if isinstance(payload, Mapping) else None
        self.store.announced(announcements if isinstance(announcements, list) else [])
        document = dict(payload) if isinstance(payload, Mapping) else {"announcements": []}
        document["_host"] = {"load_failures": self._load_failures, "status_errors": problems}
        yield StatusReport(worker=self.worker, payload=document)
        # The plugin's real announcements, passed on when they change
        # (not on every counter or duplicate in the status payload).
        if not self._passes_state_on:
            return
        state = announcer_state(self.announcer.protocol, payload if isinstance(payload, Mapping) else {})
        if state != self._last_state:
            self._last_state = state
            yield AnnouncementsChanged(worker=self.worker, state=state)

    def recover(self) -> bool:
        """Call `recover(previous)` when the last process ended uncleanly; True when it was called."""
        previous = self.store.load()
        if previous is None:
            return False
        if not isinstance(self.announcer, Recoverable):
            log.warning("announcer.unclean_end worker=%s announcements=%d fix=the plugin has no recover(); "
                        "what it had announced outside this process may remain", self.worker,
                        len(previous.announcements))
            self.store.clear()
            return False
        log.info("announcer.recovering worker=%s announcements=%d", self.worker, len(previous.announcements))
        self.announcer.recover(previous)
        self.store.clear()
        log.info("announcer.recovered worker=%s", self.worker)
        return True


def _secret_reader(settings: AnnouncerSettings) -> Callable[[str, str], Mapping[str, bytes]]:
    """`read_secret` in Kubernetes mode: the API client is imported and connected on the first read."""
    reader: list[Any] = []

    def read(namespace: str, name: str) -> Mapping[str, bytes]:
        if not reader:
            # deferred: http.client, ssl and the client module, only in an announcer that reads a Secret
            from supervisor.kubernetes.secrets import SecretReader

            reader.append(SecretReader(kubeconfig=settings.kubeconfig, api_host=settings.api_host))
        result: Mapping[str, bytes] = reader[0].read(namespace, name)
        return result

    return read


def run(settings: AnnouncerSettings, inbox: Inbox, outbox: Outbox) -> None:
    protocol = settings.protocol
    if not protocol:
        raise ValueError(f"announcer worker {settings.name} has no protocol")
    store = RecoveryStore.for_protocol(settings.state_dir, protocol)
    host = QueueHost(node_name=settings.node_name, protocol=protocol, outbox=outbox,
                     settings=json.loads(settings.announcer_settings_json), store=store, mode=settings.mode,
                     secrets=_secret_reader(settings) if settings.mode is Mode.KUBERNETES else None)
    failures: list[PluginLoadFailure] = []
    announcer = build_announcer(protocol, host, failures)
    core = HostCore(worker=settings.name, announcer=announcer, store=store, load_failures=failures,
                    report_every=REPORT_SECONDS)
    announcer.start()
    core.recover()
    log.info("announcer.started protocol=%s node=%s", protocol, settings.node_name)
    for message in core.report(force=True):
        outbox.put(message)
    serve(settings, inbox, outbox, core.handle, tick=core.tick, tick_seconds=settings.tick_seconds)
    # Control.STOP: a graceful stop, peers take over now.
    announcer.stop(handover=True)
    for message in core.report(force=True):
        outbox.put(message)
    store.clear()
    log.info("announcer.stopped protocol=%s handover=true", protocol)
