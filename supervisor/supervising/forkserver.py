"""The forkserver every worker is forked from: its start (as early as a command can), its stop.

Workers are forked by multiprocessing's forkserver (`spawning`), a clean
interpreter that imports only `preload`. Starting it is an interpreter start
plus those imports: ~90 ms of CPU, which the first spawn waits for. So
`metalloid run` starts it first thing, before its start-up check and its own
imports, and the forkserver's start runs on the other core meanwhile
(BENCHMARKS.md, issue 16's fourth session). This module imports only
multiprocessing's own parts for that reason: importing the process table
(`spawning`, the supervisor's messages and state) first would delay it.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
from multiprocessing import resource_tracker
from typing import Final

# The supervisor's logger: its parts log as the one process they make (operators filter by it).
log = logging.getLogger("supervisor.supervising.supervisor")

START_METHOD: Final = "forkserver"
PRELOAD: Final = ["supervisor.supervising.preload"]


def _without_resource_tracker() -> None:
    """Keep multiprocessing from starting its resource tracker, a whole Python process (~6.5 MiB PSS).

    Python 3.11 starts it for spawn and forkserver whether or not anything is
    tracked. It only ever tracks named semaphores and shared memory, and
    metalloid creates neither (`channels` uses pipes, not Queues), so its
    connection is pointed at /dev/null: the "is it alive" probe succeeds and
    nothing is started. The cost, for a third-party plugin that does use a
    multiprocessing lock and is then SIGKILLed: one /dev/shm/sem.* entry left
    until reboot, instead of being unlinked by the tracker. (Private API, as
    `stop_forkserver`; the process test checks no tracker process appears.)
    """
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is not None and getattr(tracker, "_fd", None) is None:
        tracker._fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def start_forkserver() -> None:
    """Start the forkserver now, before the first spawn needs it (idempotent).

    Its interpreter start and `PRELOAD` imports take a few hundred ms (more on a
    busy node); the first `Process.start()` waits for them. Started early, they
    run while this process does its own start-up work (`metalloid run` checks
    the config in a forked child meanwhile). The resource tracker is kept out
    first: `ensure_running` would start it otherwise.
    """
    _without_resource_tracker()
    multiprocessing.get_context(START_METHOD).set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()


def stop_forkserver() -> None:
    """Wait for the forkserver to exit, so that no process outlives the supervisor's exit."""
    # Private, but the only way to join it: closing its "alive" pipe (which our
    # own exit would do a moment later anyway) and reaping it.
    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)
    if stop is not None:
        try:
            stop()
        except OSError as exc:  # pragma: no cover - already gone
            log.debug("forkserver.stop_failed error=%r", exc)

