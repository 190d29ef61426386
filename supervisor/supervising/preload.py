"""Imported once by the forkserver, before it forks any worker: the modules every worker shares.

Workers are forked from multiprocessing's forkserver (see `supervisor`), a
clean process that imported only this module, so each worker starts with these
modules already in memory pages it shares with the forkserver and its siblings
(copy-on-write) instead of importing its own copy, as spawn would. Only what
most workers import belongs here: the child shell, the message types (with the
config model they carry), logging and the pipes. Role-specific weight
(PyYAML and the parser in the watcher, pyroute2 in the layer 2 announcer)
stays in the one worker that needs it.

The forkserver ignores SIGTERM, SIGINT (multiprocessing does that one) and
SIGHUP: systemd's KillMode=control-group, `timeout` and Ctrl-C signal the whole
process group, and the forkserver dying would kill every worker at once through
their death signal, before the announcers could hand over. It still exits the
moment the supervisor does (EOF on its "alive" pipe), and the supervisor stops
it explicitly when it exits.

`tune_malloc` (supervising.memory) is set here once for every worker.

`gc.freeze()` moves everything imported so far out of the collector's
generations: a collection in a worker would otherwise walk (and so write to,
and so copy) every shared object's GC header.
"""

from __future__ import annotations

import gc
import multiprocessing.connection  # noqa: F401
import signal

import supervisor.logs
import supervisor.messages
import supervisor.supervising.channels
import supervisor.supervising.child  # noqa: F401
from supervisor.supervising.memory import tune_malloc

# Every worker is forked from here, so each inherits one malloc arena.
tune_malloc()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
gc.collect()
gc.freeze()
