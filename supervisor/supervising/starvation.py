"""Slow because the node is loaded is not hung: the time a worker waited for a CPU is not held against it.

A worker proves it is alive from its own loop, between messages (`child.Heartbeat`).
A long call (a layer 2 takeover of 1,000 IPs is ~0.6 s of CPU) on a node whose two
cores run ten busy processes gets a fifth of a core and takes seconds of wall time:
judged on wall time alone the supervisor would kill it as hung, the restarted
worker would redo the same work under the same load, and the node would crash-loop
its announcer exactly when it must take IPs over.

The kernel tells the two apart. `/proc/PID/schedstat` counts the nanoseconds the
process's main thread (where every worker's loop runs) was runnable but waiting on
a run queue (CONFIG_SCHED_INFO, on in every distribution kernel). The supervisor
reads it at each heartbeat and again when a worker looks hung, and subtracts the
waiting from the silence (`lifecycle.silence`, pure): a loop that computes or sleeps forever (an infinite loop,
a deadlock, a blocked syscall) does not wait on a run queue, so it is killed after
the deadline as before; a loop that only waited for a CPU is not late by its own
time. Read from the supervisor, not the worker, so a starved worker needs no thread
of its own (which would need the GIL the busy loop holds). Where the file cannot be
read the deadline is wall time, as before.
"""

from __future__ import annotations


def run_queue_wait(pid: int) -> float | None:
    """Seconds the main thread of process `pid` has spent runnable but not running; None if unknown."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            fields = f.read().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None

