"""Keeping a long-lived process's resident memory at its working set.

`release_memory` hands freed heap back to the kernel after a big message. A
1,000-Service config is ~0.2 MB pickled but several MiB of short-lived
objects while it is parsed, unpickled, allocated or replaced; CPython's
allocator keeps the freed arenas and glibc keeps freed heap, so without this
each process's resident (and PSS) size is its high-water mark, which varies
with the timing of reloads. Called at start-up (the supervisor) and after a
config or an allocation was handled (the workers), never on a hot path: a
collection of the whole heap is a few milliseconds per MiB.

`tune_malloc` makes glibc keep one heap per process. By default every
thread that allocates gets an arena of its own (up to 8 per core), and the
supervisor's HTTP and render threads each left a partly used heap behind:
~3 MiB PSS of the supervisor (bench/runtime.py and bench/speaker_memory.py,
BENCHMARKS.md). Small objects are CPython's own allocator's and are not
affected; the threads of one process already take turns on the GIL, so one
arena costs them no parallelism. A fixed mapping threshold (big blocks in
mappings of their own, returned when freed) saved ~1 MiB more but made
every /status request pay page faults for its ~1 MB of text: p50 20 -> 35 ms
in bench/status.py, so it is not set.

`in_forked_child` runs a one-off job (the supervisor's start-up checks) in a
child that exits when it is done, so the modules the job imports (PyYAML,
the config parser, the membership key checks: ~2.5 MiB PSS, BENCHMARKS.md)
and its garbage never enter the process that lives for months. Only the
job's (small, picklable) answer comes back. `ForkedJob` is the same, started
now and answered later, so the caller works meanwhile.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import sys
import traceback
from collections.abc import Callable
from typing import Generic, NoReturn, TypeVar

T = TypeVar("T")


# glibc's mallopt() parameter (malloc.h).
M_ARENA_MAX = -8


def tune_malloc() -> bool:
    """One malloc arena for every thread (see the module docstring); False when not glibc.

    Call it before the process starts threads: a thread keeps the arena it
    got at its first allocation. A forked child inherits the settings.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    return bool(mallopt(M_ARENA_MAX, 1))


def release_memory() -> None:
    """Collect what is garbage now and return freed heap pages to the kernel (glibc's malloc_trim)."""
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Return glibc's free heap pages to the kernel (malloc_trim), without a collection.

    1.6-4 ms on a fragmented heap of ~25 MiB, with the GIL released (ctypes).
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


class HeapTrimmer:
    """`trim_heap` once a burst of big messages has settled: the supervisor's.

    The supervisor unpickles every config, allocation and announcer report,
    and renders /status (~1 MB of text with 1,000 Services) after each. glibc
    keeps what they freed: after the dynamic mmap threshold rose to the size
    of a freed block, blocks of that size come from the heap, and it trims
    only a free top larger than twice that. The speaker's supervisor held
    1.4 MiB of such pages once its first config was shown (malloc_trim on
    the running process, bench/speaker_memory.py, 2026-12-07); a collection
    found nothing more. A trim `delay` after the last big message (at most
    `longest` after the first, under a constant stream) returns them, once
    per burst, not on every message: a steady cluster trims never. A trim
    on every message would make the next render fault its pages back in.
    """

    def __init__(self, *, delay: float = 0.5, longest: float = 5.0,
                 trim: Callable[[], None] = trim_heap) -> None:
        self.delay, self.longest, self._trim = delay, longest, trim
        self._first: float | None = None
        self._due = 0.0
        self.trims = 0

    def touched(self, now: float) -> None:
        """A big message was handled at `now`."""
        if self._first is None:
            self._first = now
        self._due = min(now + self.delay, self._first + self.longest)

    def maybe(self, now: float) -> bool:
        """Trim when due; True when it did."""
        if self._first is None or now < self._due:
            return False
        self._first = None
        self._trim()
        self.trims += 1
        return True


class ChildFailed(RuntimeError):
    """The forked job raised (the child's traceback is the message) or died without an answer."""


def in_forked_child(job: Callable[[], T]) -> T:
    """`job()`, computed in a forked child; its return value (pickled) or ChildFailed."""
    return ForkedJob(job).result()


class ForkedJob(Generic[T]):
    """`job()` started in a forked child at construction; `result()` waits for its answer.

    Construct it while this process has one thread (fork copies only the
    caller's). Between the two this process is free to do other work, which
    is the point at start-up: the supervisor imports its own modules and starts
    the forkserver while the child checks the config (BENCHMARKS.md, start →
    ready). The child shares this process's stdout, stderr and logging, so what
    the job prints appears as if printed here; it leaves with `os._exit`,
    running no atexit handler and flushing no buffer of ours twice.
    """

    def __init__(self, job: Callable[[], T]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage does not follow a fork)
            os.close(read_end)
            _child(job, write_end)
        os.close(write_end)
        self._pid = pid
        self._read_end = read_end

    def result(self) -> T:
        """The job's return value; ChildFailed when it raised or died without an answer. Call it once."""
        with os.fdopen(self._read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self._pid, 0)
        if not data:
            raise ChildFailed(f"the forked job exited without an answer (wait status {status})")
        ok, value = pickle.loads(data)
        if not ok:
            raise ChildFailed(f"the forked job failed:\n{value}")
        answer: T = value
        return answer


def _child(job: Callable[[], T], write_end: int) -> NoReturn:  # pragma: no cover - runs in the forked child
    code = 0
    try:
        try:
            answer = pickle.dumps((True, job()))
        except BaseException:  # every failure goes back to the parent
            answer = pickle.dumps((False, traceback.format_exc()))
        with os.fdopen(write_end, "wb") as out:
            out.write(answer)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # nothing may escape a forked child
        code = 1
    finally:
        os._exit(code)
