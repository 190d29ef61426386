"""The process table: spawning a worker, reading its pipe, noticing its death, its timers.

Every worker is its own OS process, forked by multiprocessing's forkserver
(chosen explicitly, the same on every Python version: a clean server process
that imported only `preload`, never the supervisor's state, so nothing of the
supervisor is inherited; the shared modules' pages are, which is the point:
BENCHMARKS.md has the memory figures) with its own inbox
and outbox pipe (`channels`: plain pipes, no Queue semaphores, so no resource
tracker process). One pipe pair per worker, recreated on every spawn, so a
worker killed in the middle of a write can only ever break its own pipe, which
dies with it.

A worker that cannot even be spawned (EMFILE at the open-file limit, ENOMEM,
EAGAIN) counts as a failed start and backs off like a crash. What an exit
means (backoff, FAILED, the end of the run) is `failing`'s; where a message
goes is `dispatching`'s. This module decides neither.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource

from supervisor.messages import MetricKind, MetricOp
from supervisor.supervising import lifecycle
from supervisor.supervising.channels import Outgoing
from supervisor.supervising.child import child_main
from supervisor.supervising.lifecycle import State
from supervisor.supervising.shell import Shell, Slot
from supervisor.supervising.starvation import run_queue_wait
from supervisor.supervising.state import ANNOUNCER

# The supervisor's logger: its parts log as the one process they make (operators filter by it).
log = logging.getLogger("supervisor.supervising.supervisor")

CHILD_MAIN = "supervisor.supervising.child:child_main"


class Spawning(Shell):
    """Start, read, tick and discard worker processes."""

    def _drain(self, slot: Slot) -> None:
        outbox = slot.outbox
        if outbox is None:
            return
        while True:
            try:
                if not outbox.poll():
                    return
                message = outbox.recv()
            except (EOFError, OSError) as exc:
                # The worker exited (EOF), maybe in the middle of a write: this
                # pipe is finished; the sentinel reports the exit itself.
                log.debug("pipe.closed worker=%s error=%r", slot.spec.name, exc)
                outbox.close()
                slot.outbox = None
                return
            self._route(slot, message)

    def _tick(self, slot: Slot, now: float) -> None:
        before = slot.ws.state
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Tick(at=now))
        if before is not slot.ws.state:
            log.info("worker.running worker=%s pid=%s", slot.ws.name, slot.ws.pid)
        deadline = self._hang_deadline(slot)
        start_deadline = max(self.settings.start_deadline_seconds, deadline)
        hung = lifecycle.hung(slot.ws, now, deadline=deadline, start_deadline=start_deadline)
        if hung and slot.ws.pid is not None and slot.ws.last_heartbeat is not None:
            # Silent too long by the wall clock; by its own time too, or only starved of CPU?
            hung = lifecycle.hung(slot.ws, now, deadline=deadline, start_deadline=start_deadline,
                                  waited=run_queue_wait(slot.ws.pid))
        if hung and slot.process is not None and slot.failure is None:
            slot.failure = f"hung: no heartbeat for {deadline:g}s, killed"
            log.error("worker.hung worker=%s pid=%s deadline=%s", slot.ws.name, slot.ws.pid, deadline)
            slot.process.kill()
        if self._stopping is None and lifecycle.restart_due(slot.ws, now):
            self._spawn(slot)
        if (self._stopping is None and slot.ws.state is State.STOPPING and slot.process is not None
                and slot.stop_requested_at is not None and now - slot.stop_requested_at > self.settings.grace_seconds):
            # One announcer stopped by a reload outlived the grace period, as the whole run's would.
            log.warning("worker.killed worker=%s reason=grace period over", slot.spec.name)
            slot.process.kill()
            slot.stop_requested_at = None
        if slot.inbox is not None:
            self._metric("metalloid_queue_depth", MetricKind.GAUGE, "Messages waiting in a worker's inbox",
                         {"worker": slot.spec.name}, MetricOp.SET, float(slot.inbox.qsize()))

    def _spawn(self, slot: Slot) -> None:
        ctx = self._ctx
        opened: list[multiprocessing.connection.Connection] = []
        try:
            _check_fd_headroom()
            inbox_reader, inbox_writer = ctx.Pipe(duplex=False)
            opened += [inbox_reader, inbox_writer]
            outbox_reader, outbox_writer = ctx.Pipe(duplex=False)
            opened += [outbox_reader, outbox_writer]
            process = ctx.Process(
                target=child_main,
                args=(slot.spec.entry, slot.spec.settings, inbox_reader, outbox_writer, os.getpid()),
                name=f"metalloid-{slot.spec.name}",
                daemon=False,
            )
            process.start()
        except OSError as exc:
            # EMFILE at the open-file limit, EAGAIN/ENOMEM from fork: no
            # process, so a failed start, backed off and budgeted like a crash.
            for end in opened:
                end.close()
            self._spawn_failed(slot, exc)
            return
        # Close our copies of the ends only the child uses: a child killed in
        # the middle of a write then shows up as EOF instead of a reader
        # blocked forever on half a message, and a dead reader as EPIPE.
        outbox_writer.close()
        inbox_reader.close()
        inbox = Outgoing(inbox_writer, slot.spec.name)
        first = slot.ws.started_at is None
        slot.process, slot.inbox, slot.outbox, slot.failure = process, inbox, outbox_reader, None
        assert process.pid is not None
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Spawned(pid=process.pid, at=self._clock()))
        log.info("worker.spawned worker=%s pid=%d restarts=%d", slot.spec.name, process.pid, slot.ws.restarts)
        if not first:
            self._metric("metalloid_worker_restarts_total", MetricKind.COUNTER,
                         "Times a worker process was restarted after it died or hung",
                         {"worker": slot.spec.name}, MetricOp.INC, 1.0)
        if slot.spec.role == ANNOUNCER:
            self._failed_metric(slot, 0.0)
        if slot.spec.first_message is not None:
            inbox.put(slot.spec.first_message.take())
        for message in self.state.replay(slot.spec.role):
            inbox.put(message)

    def _spawn_failed(self, slot: Slot, exc: OSError) -> None:
        now = self._clock()
        error = f"spawn failed: {exc.strerror or exc} (errno {exc.errno})"
        # Through STARTING, so the lifecycle applies its one rule for failures.
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Spawned(pid=0, at=now))
        retry_in = slot.policy.record_failure(ran_for=0.0)
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Exited(at=now, exitcode=None, error=error,
                                                                 retry_in=retry_in))
        self._report_exit(slot, code=None, error=error, retry_in=retry_in, now=now)

    def _exited(self, slot: Slot, now: float) -> None:
        process = slot.process
        assert process is not None
        self._drain(slot)
        code = process.exitcode
        error = slot.failure
        if error is None and code not in (0, None):
            error = f"exited with code {code}" if code is not None and code > 0 else f"killed by signal {-(code or 0)}"
        ran_for = now - (slot.ws.started_at or now)
        retry_in: float | None = 0.0
        if slot.ws.state in (State.STARTING, State.RUNNING):
            if self._stopping is not None:
                slot.ws = lifecycle.transition(slot.ws, lifecycle.StopRequested(at=now))
            else:
                retry_in = slot.policy.record_failure(ran_for=ran_for)
        slot.ws = lifecycle.transition(slot.ws, lifecycle.Exited(at=now, exitcode=code, error=error, retry_in=retry_in))
        self._discard(slot)
        self._report_exit(slot, code=code, error=error, retry_in=retry_in, now=now)

    def _discard(self, slot: Slot) -> None:
        if slot.inbox is not None:
            # Whatever is still queued for a dead reader is dropped; never blocks.
            slot.inbox.close()
        if slot.outbox is not None:
            slot.outbox.close()
        if slot.process is not None:
            slot.process.join(timeout=0)
            slot.process.close()
        slot.process, slot.inbox, slot.outbox = None, None, None


# Descriptors one spawn needs: our two pipes (4), and in the forkserver
# handshake its socket and two more pipes (5), with some margin.
SPAWN_FDS = 16


def _check_fd_headroom() -> None:
    """Raise EMFILE before a spawn that would run out of descriptors half-way.

    Half-way is worse than not at all: CPython 3.11's forkserver dies with an
    EOFError when a client connects and then fails to send its descriptors,
    and every worker (its children, with a parent-death signal) dies with it.
    Counting first keeps an EMFILE a failed start of one worker.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = len(os.listdir("/proc/self/fd"))  # at the limit this itself fails with EMFILE
    if soft != resource.RLIM_INFINITY and soft - used < SPAWN_FDS:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
