"""The speaker's allocator role: it passes on the assignments its watcher read from Service status.

A speaker never allocates (the controller does); its allocator-role worker
exists so that the supervisor routes a speaker's state exactly as a
standalone node's: ConfigLoaded in, AllocationDone out. The watcher attaches
the assignments to every ConfigLoaded it sends; a ConfigLoaded without them
(none is sent today) is read from its Services' status with the same function
the watcher runs (`assignments.speaker_allocation`), so the answer never
depends on the sender.

A module of its own, apart from `kubernetes.worker`: that one imports the API
client (http.client, ssl, the Event recorder), ~2.7 MiB PSS this worker has
no use for (python -X importtime + /proc PSS, 2026-12-07).
"""

from __future__ import annotations

from supervisor.kubernetes.assignments import speaker_allocation
from supervisor.messages import AllocationDone, ConfigLoaded, FromWorker, ToWorker
from supervisor.supervising.child import Inbox, Outbox, serve
from supervisor.supervising.settings import WorkerSettings


def run(settings: WorkerSettings, inbox: Inbox, outbox: Outbox) -> None:
    def handle(message: ToWorker) -> list[FromWorker]:
        if isinstance(message, ConfigLoaded):
            result = message.allocation if message.allocation is not None else speaker_allocation(message.config)
            return [AllocationDone(generation=message.generation, result=result)]
        return []

    serve(settings, inbox, outbox, handle)
