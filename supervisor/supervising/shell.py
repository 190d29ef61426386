"""The supervisor shell's shared state: one `Slot` per worker and the `Shell` base its parts build on.

The supervisor process is one object (`supervisor.Supervisor`) assembled from
a part per job: `spawning` (the process table), `dispatching` (messages in,
routed messages out), `failing` (exits, restarts and FAILED announcers),
`reloading` (SIGHUP and announcers following the config) and `probing`
(/status, /healthz, /readyz). `Shell` declares the state they share and the
methods one part calls in another, so each part type-checks alone. It holds
no logic but the metric helper every part uses; it decides nothing.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.process
import threading
from collections.abc import Callable

from supervisor.announcing.enabling import Decision
from supervisor.config.model import Config
from supervisor.messages import ConfigLoaded, FromWorker, MetricKind, MetricOp, MetricUpdate, ToWorker
from supervisor.roles import Role
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising import stopping
from supervisor.supervising.backoff import RestartPolicy
from supervisor.supervising.channels import Outgoing
from supervisor.supervising.lifecycle import WorkerState
from supervisor.supervising.memory import HeapTrimmer
from supervisor.supervising.rendering import StatusRenderer
from supervisor.supervising.specs import SupervisorSettings, WorkerSpec
from supervisor.supervising.state import RoutedState

EXIT_OK = 0
EXIT_WORKER_FATAL = 3
EXIT_SUPERVISOR_ERROR = 4


class Slot:
    """One worker: its spec, lifecycle state, restart policy and current process."""

    def __init__(self, spec: WorkerSpec, settings: SupervisorSettings, clock: Callable[[], float]) -> None:
        self.spec = spec
        self.ws = WorkerState(name=spec.name, start_seconds=settings.start_seconds)
        self.policy = RestartPolicy(settings.backoff, clock=clock, name=spec.name)
        self.process: multiprocessing.process.BaseProcess | None = None
        self.inbox: Outgoing | None = None
        self.outbox: multiprocessing.connection.Connection | None = None
        self.failure: str | None = None
        # An announcer stopped to be started again with a new spec (its AnnouncerConfig changed).
        self.restart_pending = False
        self.stop_requested_at: float | None = None


class Shell:
    """The state of the supervisor process (set by `Supervisor.__init__`) and the calls across its parts."""

    settings: SupervisorSettings
    metrics: MetricsRegistry
    state: RoutedState
    lock: threading.Lock
    _clock: Callable[[], float]
    _ctx: multiprocessing.context.ForkServerContext
    _slots: list[Slot]
    _stop_requested: bool
    _reload_requested: bool
    _stopping: stopping.Stopping | None
    _exit_code: int | None
    _pool_names: set[str]
    _last_loop: float
    _ready: bool
    _decisions: dict[str, Decision]
    _published_readiness: tuple[bool, str]
    _renderer: StatusRenderer
    _render_lock: threading.Lock
    _published_fatal: str | None
    _trimmer: HeapTrimmer
    _exit_after_stop = EXIT_OK

    def _metric(self, name: str, kind: MetricKind, doc: str, labels: dict[str, str], op: MetricOp,
                value: float) -> None:
        self.metrics.apply(MetricUpdate(name=name, kind=kind, documentation=doc, labels=tuple(labels.items()),
                                        op=op, value=value))

    # -- defined by the parts (spawning, dispatching, failing, reloading, probing) or the Supervisor --

    def _spawn(self, slot: Slot) -> None:
        raise NotImplementedError

    def _route(self, slot: Slot, message: FromWorker) -> None:
        raise NotImplementedError

    def _send(self, role: Role, message: ToWorker) -> None:
        raise NotImplementedError

    def _report_exit(self, slot: Slot, *, code: int | None, error: str | None, retry_in: float | None,
                     now: float) -> None:
        raise NotImplementedError

    def _failed_metric(self, slot: Slot, value: float) -> None:
        raise NotImplementedError

    def _hang_deadline(self, slot: Slot) -> float:
        raise NotImplementedError

    def _enabled(self, slot: Slot) -> bool:
        raise NotImplementedError

    def _begin_stop(self, now: float) -> None:
        raise NotImplementedError

    def _start_on_peers(self, loaded: ConfigLoaded) -> None:
        raise NotImplementedError

    def _follow_announcers(self, config: Config) -> None:
        raise NotImplementedError
