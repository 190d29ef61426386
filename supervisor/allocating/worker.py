"""The allocator worker: the pure allocator behind a queue, plus the state file.

It starts from what was persisted (the state directory) so that a restart of
anything gives every Service the IP it had; then, for every `ConfigLoaded`, it
allocates against the previous assignments, persists the answer when it
changed, and sends `AllocationDone` (a ConfigLoaded that carries the
allocation its watcher computed, the Kubernetes controller's, is passed on). Deterministic: given the same config and
the same state file, every standalone node computes the same assignments.

A state file that cannot be read is fatal for this worker (`StateFileError`
escapes, the process reports WorkerFailed and exits): allocating without it
could move Services to other IPs. `metalloid run` checks the file before it
spawns anything, so an operator sees the message at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from supervisor.allocating import statefile
from supervisor.allocating.results import AllocationResult
from supervisor.config.model import IPAddress, ServiceKey
from supervisor.messages import AllocationDone, ConfigLoaded, FromWorker, ToWorker
from supervisor.supervising.child import Inbox, Outbox, serve
from supervisor.supervising.settings import AllocatorSettings

log = logging.getLogger(__name__)


class AllocatorCore:
    """The worker's state between messages: the assignments it last persisted."""

    def __init__(self, *, state_dir: str | None, previous: Mapping[ServiceKey, tuple[IPAddress, ...]]) -> None:
        self.state_dir = state_dir
        self.previous: dict[ServiceKey, tuple[IPAddress, ...]] = dict(previous)

    def handle(self, message: ToWorker) -> Iterator[FromWorker]:
        match message:
            case ConfigLoaded(generation=generation, config=config, allocation=handed):
                # deferred: +0.7 MiB PSS in the controller's allocator, which passes on the controller's
                # result and never allocates (2026-12-06).
                from supervisor.allocating.allocator import allocate

                # Kubernetes' controller computed it already (and writes it): one fact, one owner.
                result: AllocationResult = handed if handed is not None else allocate(config, self.previous)
                current = {key: a.ips for key, a in result.assignments.items()}
                self._persist(current, result)
                previous, self.previous = self.previous, current
                # Answered before the log lines: at start every Service is new, and
                # 1,000 lines are ~20 ms the node's readiness need not wait for.
                yield AllocationDone(generation=generation, result=result)
                for key, ips in sorted(current.items()):
                    if previous.get(key) != ips:
                        log.info("ip.assigned service=%s ips=%s pool=%s", key,
                                 ",".join(map(str, ips)), result.assignments[key].pool)
                for key in sorted(set(previous) - set(current)):
                    log.info("ip.released service=%s ips=%s", key, ",".join(map(str, previous[key])))
                for key, reason in sorted(result.pending.items()):
                    log.info("ip.pending service=%s reason=%s", key, reason)
            case _:
                # Everything else (membership views, STOP) is not for us; STOP
                # never reaches here (the loop handles it).
                log.debug("allocator.ignored message=%s", type(message).__name__)

    def _persist(self, current: dict[ServiceKey, tuple[IPAddress, ...]], result: AllocationResult) -> None:
        if self.state_dir is None or current == self.previous:
            return
        pools = {key: a.pool for key, a in result.assignments.items()}
        path = statefile.save(self.state_dir, current, pools)
        log.info("state.saved path=%s services=%d", path, len(current))


def run(settings: AllocatorSettings, inbox: Inbox, outbox: Outbox) -> None:
    if settings.state_dir:
        statefile.remove_temporaries(settings.state_dir)
    previous = statefile.load(settings.state_dir) if settings.state_dir else {}
    log.info("allocator.started state_dir=%s services=%d", settings.state_dir, len(previous))
    core = AllocatorCore(state_dir=settings.state_dir, previous=previous)
    serve(settings, inbox, outbox, core.handle)
