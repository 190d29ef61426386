"""Handing freed heap back to the kernel after a big message, so resident memory stays at the working set.

A 1,000-Service config is ~0.2 MB pickled but several MiB of short-lived
objects while it is parsed, unpickled, allocated or replaced; CPython's
allocator keeps the freed arenas and glibc keeps freed heap, so without this
each process's resident (and PSS) size is its high-water mark, which varies
with the timing of reloads. Called at start-up (the supervisor) and after a
config or an allocation was handled (the workers), never on a hot path: a
collection of the whole heap is a few milliseconds per MiB.
"""

from __future__ import annotations

import ctypes
import gc


def release_memory() -> None:
    """Collect what is garbage now and return freed heap pages to the kernel (glibc's malloc_trim)."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass
