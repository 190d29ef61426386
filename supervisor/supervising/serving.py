"""The one way every long-running command runs its supervisor: build, signals, HTTP, run, close.

`metalloid run`, `controller` and `speaker` differ only in the workers they
list; this is the block they share. (What the command's start-up checks
allocated is handed back to the operating system by the supervisor right
after its first spawns, `Supervisor.run`: the supervisor lives for months, and
its resident memory counts against the pod's memory request.)
"""

from __future__ import annotations

import argparse
import logging
import sys

from supervisor.announcing.enabling import Decision
from supervisor.serving.http import PortInUseError, start_http_server
from supervisor.serving.metrics import MetricsRegistry
from supervisor.serving.options import HttpOptionError, http_options
from supervisor.supervising.memory import tune_malloc
from supervisor.supervising.supervisor import Supervisor, SupervisorSettings, WorkerSpec

log = logging.getLogger(__name__)

SWITCH_SECONDS = 0.001


def serve_supervisor(command: str, specs: list[WorkerSpec], settings: SupervisorSettings, *,
                     args: argparse.Namespace, decisions: tuple[Decision, ...] = ()) -> int:
    """Run the supervisor until it stops; its exit code, or 1 when the HTTP flags or port are unusable.

    `args` holds the HTTP flags (`supervisor.serving.options.add_http_arguments`).
    """
    tune_malloc()  # before the first thread (the HTTP server's, the pipes' writers, the render-ahead)
    try:
        options = http_options(args)
    except HttpOptionError as exc:
        print(f"metalloid {command}: {exc}", file=sys.stderr)
        return 1
    metrics = MetricsRegistry()
    sup = Supervisor(specs, settings, metrics=metrics, decisions=decisions)
    sup.install_signal_handlers()
    try:
        server = start_http_server(options.port, host=options.host, status=sup.status_json,
                                   healthz=sup.healthz, readyz=sup.readyz, metrics=metrics, options=options)
    except PortInUseError as exc:
        print(f"metalloid {command}: {exc}", file=sys.stderr)
        return 1
    log.info("%s.starting node=%s workers=%s", command, settings.node_name, ",".join(s.name for s in specs))
    # The HTTP threads, the /status render, the pipes' writer threads and the loop share one GIL;
    # a thread that wants it waits until the holder has run this long. 5 ms (CPython's default)
    # times each hand-over a request needs (accept, its thread's start, read, write) made a /healthz
    # wait 100+ ms behind a reload's unpickling and a render (bench/status.py); 1 ms cuts that wait.
    sys.setswitchinterval(SWITCH_SECONDS)
    stop_rendering = sup.render_ahead()
    try:
        return sup.run()
    finally:
        server.close()
        stop_rendering()

