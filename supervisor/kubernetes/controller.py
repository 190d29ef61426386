"""The controller's Kubernetes side: watcher + lease + status writer, around an allocator.

`ControllerCore` is what the k8s watcher worker does with allocations in the
`metalloid controller` role: it writes an `AllocationDone` only while this
replica holds the lease, and only one computed from a config emitted after it
became leader (a follower's older answer may predate the previous leader's
last writes). `ControllerLoop` runs the whole controller in threads of one
process (watcher → allocate → writer): the `metalloid controller` worker
process runs it, and so do the tests and benchmarks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from supervisor.allocating.allocator import allocate
from supervisor.config.diagnostics import Diagnostic
from supervisor.config.model import Config
from supervisor.kubernetes import events
from supervisor.kubernetes.assignments import previous_from_status
from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.confstate import ConfigStateWriter, configuration_state
from supervisor.kubernetes.leaderelection import LeaderElector, LeaseTimings
from supervisor.kubernetes.statuswriter import StatusWriter
from supervisor.kubernetes.watcher import Emitted, KubeWatcher, WatchOptions
from supervisor.messages import AllocationDone, ConfigLoaded, ConfigRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerOptions:
    namespace: str = "metallb-system"
    lb_class: str | None = None
    lease_name: str = "metalloid-controller"
    identity: str = "metalloid-controller"
    timings: LeaseTimings = field(default_factory=LeaseTimings)
    watch: WatchOptions | None = None


class ControllerCore:
    def __init__(
        self,
        client: RawClient,
        options: ControllerOptions,
        emit: Callable[[Emitted], None],
        *,
        metric: Callable[[str, float], None] = lambda name, value: None,
        validators: Sequence[Callable[[Config], list[Diagnostic]]] = (),
    ) -> None:
        watch = options.watch or WatchOptions(namespace=options.namespace)
        # The writer filters by class itself; the watcher hands the allocator our Services only.
        watch = replace(watch, lb_class=options.lb_class)
        self.watcher = KubeWatcher(client, watch, emit, metric=metric, validators=validators)
        self.elector = LeaderElector(
            client,
            namespace=options.namespace,
            name=options.lease_name,
            identity=options.identity,
            timings=options.timings,
            on_change=self._leadership,
        )
        self.writer = StatusWriter(
            client,
            lb_class=options.lb_class,
            may_write=self.elector.is_leader,
            metric=metric,
            recorder=events.EventRecorder(client, component="metallb-controller", on_write=None),
        )
        self.confstate = ConfigStateWriter(client, namespace=options.namespace)
        self.min_generation = 1 << 62  # nothing is written before we lead
        self.applied = 0  # allocations reconciled against the API as leader
        self._lock = threading.Lock()
        self._elector_thread = threading.Thread(target=self.elector.run, name="lease", daemon=True)

    def start(self) -> None:
        self.watcher.start()
        self._elector_thread.start()

    def stop(self, *, release: bool = True) -> None:
        self.elector.release_on_stop = release
        self.elector.stopping.set()
        self.watcher.stop()
        self._elector_thread.join(2.0)

    def _leadership(self, leader: bool) -> None:
        if leader:
            with self._lock:
                self.min_generation = self.watcher.generation + 1
            self.watcher.force_emit()

    def allocation_done(self, done: AllocationDone, loaded: ConfigLoaded | None = None) -> int:
        """Write `done` (as leader, if not older than our leadership); `loaded`: its config's verdict too."""
        with self._lock:
            if not self.elector.is_leader() or done.generation < self.min_generation:
                return 0
            cache = self.watcher.cache
            self.applied += 1
            if loaded is not None:
                self.writer.report_warnings(loaded.warnings, self.watcher.snapshot())
                self.confstate.update(configuration_state("controller", "", errors=(), warnings=loaded.warnings))
            return self.writer.apply(done.result, cache.objects("Service"), cache.objects("IPAddressPool"))

    def config_rejected(self, rejected: ConfigRejected) -> None:
        with self._lock:
            if self.elector.is_leader():
                self.writer.report_invalid(rejected.diagnostics, self.watcher.snapshot())
                self.confstate.update(configuration_state("controller", "", errors=rejected.diagnostics))


class ControllerLoop:
    """The whole controller in threads: watcher → allocate → status writer.

    Allocation and writes run in the watcher's emitter thread: while a batch of
    writes is in flight no new config is parsed, and the next one is the state
    after the whole batch. This is the one place the controller allocates:
    `forward` (the worker process's outbox) receives each ConfigLoaded with
    that allocation attached, so the supervisor's /status and pool metrics
    show the very result written to Service status.
    """

    def __init__(
        self,
        client: RawClient,
        options: ControllerOptions,
        *,
        forward: Callable[[Emitted], None] = lambda message: None,
        metric: Callable[[str, float], None] = lambda name, value: None,
        validators: Sequence[Callable[[Config], list[Diagnostic]]] = (),
    ) -> None:
        self.core = ControllerCore(client, options, self._handle, metric=metric, validators=validators)
        self.forward = forward
        self.allocations = 0

    def start(self) -> ControllerLoop:
        self.core.start()
        return self

    def stop(self, *, release: bool = True) -> None:
        self.core.stop(release=release)

    def _handle(self, message: Emitted) -> None:
        match message:
            case ConfigLoaded(generation=generation, config=config):
                result = allocate(config, previous_from_status(config))
                self.allocations += 1
                loaded = replace(message, allocation=result)
                self.forward(loaded)
                self.core.allocation_done(AllocationDone(generation=generation, result=result), loaded)
            case ConfigRejected():
                self.forward(message)
                self.core.config_rejected(message)
