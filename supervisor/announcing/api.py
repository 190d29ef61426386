"""The behaviour an announcer plugin implements, and what the host gives it.

An announcer is a class registered under a protocol name through the
`metalloid_register_announcers` hook (see `supervisor.hookspecs`). The host
runs each announcer in its own process (`supervisor.announcing.host`), builds
it with an `AnnouncerHost`, and drives it:

    start()                       once, before anything is owned: open sockets
    recover(previous)             optional: after a crash, kill or hang kill, before the first
                                  update; withdraw what the last process had announced
    update(view)                  whenever any fact changed; `view` is the whole present
    tick(now)                     every ~50 ms, for timers (bursts, refreshes)
    status()                      after update/tick, for /status, explain and
                                  (Kubernetes) ServiceL2Status and Events
    stop(handover=...)            on shutdown: withdraw everything

The host owns facts (config, assignments, live members); the announcer owns
the policy (who announces: layer 2 elects one node, BGP uses every eligible
node) and the wire. Everything here is public API for third-party plugins.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NotRequired, Protocol, TypeAlias, TypedDict, runtime_checkable

from supervisor.allocating.results import Assignment
from supervisor.config.model import Config, IPAddress, ServiceKey
from supervisor.pickling import quick_pickle


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncerView:
    """The whole present, as the host knows it. Replaces the previous view.

    `mode` is "standalone" or "kubernetes". `members` are the node names
    membership sees alive, this node included once it is up.
    `members_changed_at` is the `time.monotonic()` (system-wide on Linux) at
    which membership saw `members` change, None if unknown: an announcer that
    takes over an IP because of it can time its failover.
    """

    node_name: str
    mode: str
    config: Config
    assignments: tuple[Assignment, ...]
    members: frozenset[str]
    generation: int = 0
    members_changed_at: float | None = None


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """One IP this node announces for a service, for /status and metrics."""

    service: ServiceKey
    ip: IPAddress
    protocol: str
    node: str
    interfaces: tuple[str, ...] = ()
    reason: str = ""
    # BGP: the BGPPeers whose configuration holds the route (ServiceBGPStatus.status.peers).
    peers: tuple[str, ...] = ()


class AnnouncementStatus(TypedDict):
    """One entry of `AnnouncerStatus["announcements"]`: an `Announcement`, JSON-ready."""

    service: str  # "namespace/name"
    ip: str
    protocol: str
    node: str
    interfaces: NotRequired[list[str]]
    reason: NotRequired[str]
    peers: NotRequired[list[str]]


class AnnounceFailureStatus(TypedDict):
    """One entry of `AnnouncerStatus["failures"]`: an `AnnounceFailure`, JSON-ready."""

    service: str  # "namespace/name"
    ip: str
    protocol: str
    node: str
    reason: str


class AnnouncerStatus(TypedDict):
    """What `Announcer.status()` returns: the readiness and status contract.

    `announcements`: what this node announces now (shown in /status, `metalloid
    status`, `explain`; persisted by the host for `recover`). `sockets_ready`:
    False while the announcer cannot announce yet (sockets not open, the
    external system not reachable): the node's /readyz answers 503 until it is
    True (absent = ready). `elections`: optional, per Service, who should
    announce and why. `failures`: optional, the IPs this node should announce
    (it won them) but cannot. `announcements` and `failures` are the
    announcer's real state: in Kubernetes mode they become ServiceL2Status
    objects and the nodeAssigned / announceFailed Events. Any other key is
    the plugin's own, shown as-is under /status "plugins".
    """

    announcements: list[AnnouncementStatus]
    sockets_ready: NotRequired[bool]
    elections: NotRequired[Any]
    failures: NotRequired[list[AnnounceFailureStatus]]


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Previous:
    """What the last process of this announcer left behind when it did not stop cleanly.

    The host persists it in the state dir after every change (and on
    `host.remember`) and deletes it when `stop()` returned, so finding it at a
    start means the process crashed, was killed (SIGKILL, OOM) or was killed
    as hung. `announcements`: its last reported `status()["announcements"]`.
    `remembered`: the last value it passed to `host.remember()` (None if never).
    """

    announcements: tuple[AnnouncementStatus, ...] = ()
    remembered: Any = None


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AnnounceFailure:
    """An IP this node should announce (it won it) but cannot, and why.

    Layer 2: none of the interfaces it must answer on is open on this node
    (MetalLB's `announceFailed`). Not a lost election: that is not a failure.
    """

    service: ServiceKey
    ip: IPAddress
    protocol: str
    node: str
    reason: str


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncerState:
    """What an announcer really does, as the host reads it from `status()`.

    The host derives it from the status payload's "announcements" and
    "failures" after every update and tick, and passes it on only when it
    changed: the speaker writes ServiceL2Status and the nodeAssigned and
    announceFailed Events from it, never from an election of its own.
    """

    protocol: str
    announcements: tuple[Announcement, ...] = ()
    failures: tuple[AnnounceFailure, ...] = ()


def announcer_state(protocol: str, payload: Mapping[str, Any]) -> AnnouncerState:
    """Parse a JSON-ready status payload (see `Announcer.status`) into an `AnnouncerState`.

    Entries that are not well-formed (a plugin's bug) are skipped, not fatal:
    the status document still shows them as the plugin wrote them.
    """

    def key(text: object) -> ServiceKey | None:
        namespace, _, name = str(text).partition("/")
        return ServiceKey(namespace=namespace, name=name) if name else None

    announcements: list[Announcement] = []
    for entry in payload.get("announcements") or ():
        try:
            service, ip = key(entry["service"]), ipaddress.ip_address(str(entry["ip"]))
        except (KeyError, TypeError, ValueError):
            continue
        if service is not None:
            announcements.append(Announcement(
                service=service, ip=ip, protocol=str(entry.get("protocol") or protocol), node=str(entry.get("node")),
                interfaces=tuple(str(i) for i in entry.get("interfaces") or ()), reason=str(entry.get("reason") or ""),
                peers=tuple(str(p) for p in entry.get("peers") or ()),
            ))  # fmt: skip
    failures: list[AnnounceFailure] = []
    for entry in payload.get("failures") or ():
        try:
            service, ip = key(entry["service"]), ipaddress.ip_address(str(entry["ip"]))
        except (KeyError, TypeError, ValueError):
            continue
        if service is not None:
            failures.append(AnnounceFailure(service=service, ip=ip, protocol=str(entry.get("protocol") or protocol),
                                            node=str(entry.get("node")), reason=str(entry.get("reason") or "")))
    return AnnouncerState(protocol=protocol, announcements=tuple(announcements), failures=tuple(failures))


class SecretUnavailable(Exception):
    """`AnnouncerHost.read_secret` could not read the Secret (since plugin API 1.2).

    `code` is the API server's HTTP status (403: this process may not read it,
    404: no such Secret, ...), or 0 when no API server answered: unreachable,
    timed out, or none at all (standalone mode). The message says which.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class AnnouncerHost(Protocol):
    """What the host offers an announcer (its only way to talk outward)."""

    @property
    def node_name(self) -> str: ...

    @property
    def mode(self) -> str:
        """"kubernetes" or "standalone" (since 1.2): where this node's facts come from, the same
        as every `AnnouncerView.mode`, known from construction on (before the first view)."""
        ...

    def read_secret(self, namespace: str, name: str) -> Mapping[str, bytes]:
        """The `data` of Secret `namespace/name`, each value base64-decoded (since 1.2).

        Kubernetes mode only: one GET through the host's own API connection, with
        this process's credentials (the speaker's service account; RBAC decides
        which Secrets it may read). Blocking, for up to ~5 s: call it from your
        own worker thread, never from `update()` or `tick()`. Raises
        `SecretUnavailable` (with the HTTP status) when it cannot, and always in
        standalone mode, where there is no API server.
        """
        ...

    @property
    def log(self) -> logging.Logger: ...

    def counter(self, name: str, documentation: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        """Add `value` to a counter in the node's /metrics."""

    def gauge(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        """Set a gauge in the node's /metrics."""

    def observe(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        """Record one observation in a histogram in the node's /metrics."""

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        """Drop one labelled series (e.g. metallb_speaker_announced on withdraw)."""

    @property
    def settings(self) -> Mapping[str, Any]:
        """`spec.settings` of this announcer's AnnouncerConfig ({} without one), as at start.

        A change of the AnnouncerConfig restarts the announcer process, so this
        never changes under a running announcer; `view.config.announcer(protocol)`
        has the same data.
        """
        ...

    def remember(self, value: Any) -> None:
        """Persist `value` (JSON-ready) now, before an external side effect: write-ahead for `recover`.

        After a crash or a kill, the next process's `recover(previous)` gets it
        as `previous.remembered`. The host also persists the announcements of
        every `status()` by itself; `remember` covers what happens between two.
        """


@runtime_checkable
class Announcer(Protocol):
    """The behaviour every announcer plugin implements (see the module docstring)."""

    protocol: ClassVar[str]

    def start(self) -> None:
        """Prepare to announce (open sockets, join groups); announce nothing yet.

        Raise to fail the start: the host reports it and restarts the process.
        """

    def update(self, view: AnnouncerView) -> None:
        """Reconcile with `view`: announce what this node should, withdraw the rest."""

    def tick(self, now: float) -> None:
        """Called about every 50 ms with `time.monotonic()`; for timers only."""

    def status(self) -> Mapping[str, Any]:
        """JSON-ready status shaped like `AnnouncerStatus` (annotate yours `-> AnnouncerStatus`)."""

    def stop(self, *, handover: bool) -> None:
        """Withdraw everything. `handover`: a graceful stop, peers take over now."""


@runtime_checkable
class Recoverable(Protocol):
    """An announcer with external state implements this too (optional, checked with isinstance)."""

    def recover(self, previous: Previous) -> None:
        """Clean up after the last process of this announcer, which did not stop cleanly.

        Called after `start()` and before the first `update()`, only when the
        last process crashed or was killed. Withdraw everything `previous`
        lists (the first `update()` re-announces what is still this node's).
        Raising fails the start; the next start gets the same `previous`
        (at-least-once), so make it idempotent.
        """


# An announcer class: called with the host, it builds the announcer. Its
# `protocol` class attribute is read at registration.
AnnouncerFactory: TypeAlias = Callable[[AnnouncerHost], Announcer]


class AnnouncerRegistry:
    """Collects announcer classes by protocol name (the registry hook's argument)."""

    def __init__(self) -> None:
        self._factories: dict[str, AnnouncerFactory] = {}

    def add(self, factory: AnnouncerFactory) -> None:
        name = getattr(factory, "protocol", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"announcer {factory!r} has no 'protocol' name (a non-empty str class attribute)")
        if name in self._factories:
            raise ValueError(f"two announcers claim protocol {name!r}: {self._factories[name]!r} and {factory!r}")
        self._factories[name] = factory

    def get(self, name: str) -> AnnouncerFactory | None:
        return self._factories.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._factories))
