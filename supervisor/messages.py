"""Every message that crosses a process boundary, in one module.

Workers talk only through multiprocessing queues carrying these frozen, slotted,
keyword-only dataclasses (plus the `Control.STOP` sentinel), dispatched with
`match`. The union types at the bottom are closed: a worker that receives
anything else has a bug, and says so.

Flow (see DESIGN.md): watcher → ConfigLoaded/ConfigRejected → supervisor →
allocator → AllocationDone → supervisor → announcers (as AnnouncerView) and
membership; membership → MembersChanged → supervisor → announcers. Every worker
sends WorkerHeartbeat, MetricUpdate and StatusReport to the supervisor.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from supervisor.allocating.results import AllocationResult
from supervisor.announcing.api import AnnouncerState, AnnouncerView
from supervisor.config.diagnostics import Diagnostic
from supervisor.config.model import Config, ServiceKey
from supervisor.pickling import quick_pickle


class Control(enum.Enum):
    """Sentinels. STOP: finish what you hold (announcers hand over) and exit 0.

    RELOAD (to the file watcher): read the config files now, the SIGHUP the
    supervisor was sent. A message wakes the watcher's wait for its inbox at
    once; a signal only ended it at its next timeout (PEP 475 resumes it).
    """

    STOP = "stop"
    RELOAD = "reload"


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigLoaded:
    """A new valid config. `generation` increases with every load of this watcher.

    `allocation`: the assignments this watcher already holds for `config`
    (Kubernetes: what the controller computed and writes to Service status,
    or what Service status holds for a speaker); the allocator worker passes
    it on as its answer instead of computing the same fact a second time.
    None (standalone): the allocator worker computes it.
    """

    generation: int
    config: Config
    origin: str
    warnings: tuple[Diagnostic, ...] = ()
    allocation: AllocationResult | None = None


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigRejected:
    """A new config failed validation; the last good one stays in force."""

    generation: int
    origin: str
    diagnostics: tuple[Diagnostic, ...]


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationDone:
    """The allocator's answer for `generation` of the config."""

    generation: int
    result: AllocationResult


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class MemberInfo:
    name: str
    alive: bool
    last_heard_seconds: float | None
    digest: str | None = None
    # Why `alive` is what it is: "heartbeat", "startup-grace", or, in Kubernetes
    # mode for a peer never heard since start, "kubernetes-ready" (its Node's
    # Ready condition; see supervisor/membership/fallback.py).
    basis: str = "heartbeat"


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class MembersChanged:
    """The membership view: who is alive, and the full table for /status."""

    alive: frozenset[str]
    members: tuple[MemberInfo, ...] = ()
    # Services whose assignment differs on some peer (standalone consistency).
    digest_mismatch: tuple[tuple[str, tuple[ServiceKey, ...]], ...] = ()
    # time.monotonic() (CLOCK_MONOTONIC, system-wide on Linux, so comparable
    # across processes) when `alive` last changed; None before any change.
    # The layer 2 announcer measures metalloid_failover_seconds from it.
    changed_at: float | None = None


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class ViewChanged:
    """Supervisor → announcer: the facts changed; here is the whole present."""

    view: AnnouncerView


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerHeartbeat:
    worker: str
    pid: int
    at: float


class MetricOp(enum.Enum):
    INC = "inc"
    SET = "set"
    OBSERVE = "observe"
    REMOVE = "remove"


class MetricKind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class MetricUpdate:
    """A change to one time series in the supervisor's registry.

    Workers never import prometheus_client: they describe the change and the
    supervisor applies it (~12 µs per update, FACTS.md). The first update of a
    name declares it (kind, documentation, label names).
    """

    name: str
    kind: MetricKind
    documentation: str
    labels: tuple[tuple[str, str], ...] = ()
    op: MetricOp = MetricOp.INC
    value: float = 1.0


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    """A worker's part of `/status` (JSON-ready), replacing its previous one."""

    worker: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncementsChanged:
    """Announcer → supervisor → (Kubernetes) watcher: what `worker` really announces now.

    Sent by the announcer host only when its plugin's announcements or
    failures changed; the supervisor keeps the last one per worker and
    replays them to a restarted watcher.
    """

    worker: str
    state: AnnouncerState


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerFailed:
    """A worker met an error it reports before exiting (shown in /status)."""

    worker: str
    error: str


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncerFailed:
    """To the watcher: announcer `protocol` spent its restart budget and is FAILED (a Warning Event in k8s)."""

    protocol: str
    error: str


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedAtStart:
    """To the file watcher, first in its inbox (`metalloid run`): the start-up check's parse of the files.

    `documents` is that check's `DocumentReuse.export()`: the watcher's first
    load adopts it and reads only what changed since, instead of parsing every
    document a second time. Empty for a restarted watcher (it reads the files
    from nothing, as every restarted worker starts) and when the check had
    nothing to hand over (a file with a problem is read plainly).
    """

    documents: bytes = b""


ToWorker: TypeAlias = (
    ConfigLoaded
    | AllocationDone
    | MembersChanged
    | ViewChanged
    | AnnouncerFailed
    | AnnouncementsChanged
    | ParsedAtStart
    | Control
)
FromWorker: TypeAlias = (
    ConfigLoaded
    | ConfigRejected
    | AllocationDone
    | MembersChanged
    | WorkerHeartbeat
    | MetricUpdate
    | StatusReport
    | AnnouncementsChanged
    | WorkerFailed
)
