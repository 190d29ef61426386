"""The two one-way pipes between the supervisor and one worker, and both ends' wrappers.

Why plain `multiprocessing.Pipe(duplex=False)` and not `multiprocessing.Queue`:
a Queue carries a lock and a semaphore, and with spawn or forkserver every
semaphore is registered with multiprocessing's resource tracker, a whole extra
Python process (~6.5 MiB PSS) for nothing we need. A pipe has no lock, so each
end has exactly one owner here: the supervisor's writer thread writes the
inbox, the worker reads it; the worker writes the outbox (under a lock, its
threads share it), the supervisor's loop reads it. One pair per worker,
recreated on every spawn, so a worker killed in the middle of a write breaks
its own pipe only (the supervisor reads EOF and drops it).

`Outgoing.put` never blocks the supervisor's loop: a 1,000-service config is
bigger than a pipe's 64 KiB buffer, and a hung worker that never reads would
otherwise stall every other worker's routing. A writer thread per worker does
the blocking `send`, as Queue's feeder thread did.

The worker side mimics `queue.Queue`'s `get`/`put`, so workers run unchanged
in tests with `queue.Queue` and in processes with these.
"""

from __future__ import annotations

import logging
import queue
import threading
from multiprocessing.connection import Connection
from typing import Any, Final

from supervisor.messages import Control

log = logging.getLogger(__name__)

_CLOSE: Final = object()


class Outgoing:
    """The supervisor's end of a worker's inbox: `put` queues, a thread sends."""

    def __init__(self, conn: Connection, worker: str) -> None:
        self._conn = conn
        self._worker = worker
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._send_all, name=f"inbox-{worker}", daemon=True)
        self._thread.start()

    def put(self, message: Any) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(message)

    def qsize(self) -> int:
        """Messages put but not yet written into the pipe (the queue depth metric)."""
        return self._pending

    def close(self) -> None:
        """Stop sending; what is still queued for a dead worker is dropped. Never blocks."""
        self._queue.put(_CLOSE)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _send_all(self) -> None:
        broken = False
        try:
            while True:
                message = self._queue.get()
                if message is _CLOSE:
                    return
                try:
                    if not broken:
                        self._conn.send(message)
                except OSError as exc:  # EPIPE: the worker died; its sentinel tells the loop
                    log.debug("inbox.broken worker=%s error=%r", self._worker, exc)
                    broken = True
                finally:
                    # Not kept until the next message arrives (for the watcher that can be
                    # hours): a config or the start-up parse is a few hundred KB.
                    del message
                    with self._lock:
                        self._pending -= 1
        finally:
            # Only this thread ever touches the connection, so only it closes it.
            self._conn.close()


class WorkerInbox:
    """The worker's end of its inbox, with `queue.Queue.get` semantics."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not self._conn.poll(timeout if block else 0.0):
            raise queue.Empty
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            # The supervisor is gone (its death signal is on the way): stop as told.
            return Control.STOP


class WorkerOutbox:
    """The worker's end of its outbox, with `queue.Queue.put` semantics; thread-safe."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            self._conn.send(obj)
