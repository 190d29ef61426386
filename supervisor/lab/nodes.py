"""Starting a `metalloid run` node inside the lab, the one way the demo, the tests and the benches do it.

Each node gets its own state dir and an appended log file in `workdir`
(`state-<node>`, `<node>.log`) and the shared membership key; the process is
tracked by the lab, so teardown stops it by PID.
"""

from __future__ import annotations

import calendar
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from supervisor.lab.netns import Lab

HTTP_PORT = 7472

# Run in the client namespace: GET every URL, print the bodies (None on error) as JSON.
FETCH = (
    "import json,sys,urllib.request\n"
    "out=[]\n"
    "for u in sys.argv[1:]:\n"
    "    try: out.append(urllib.request.urlopen(u,timeout=2).read().decode())\n"
    "    except Exception: out.append(None)\n"
    "print(json.dumps(out))\n"
)


def log_time(stamp: str) -> float:
    """A log line's `2026-12-06T20:01:52.123Z` (supervisor/logs.py) as seconds since the epoch."""
    whole, _, millis = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000


def spawn_node(
    lab: Lab,
    node: str,
    *,
    config: Path,
    key: Path,
    workdir: Path,
    announcers: str | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """`metalloid run --config CONFIG --node NODE` in `node`'s namespace, serving HTTP on 7472."""
    state = workdir / f"state-{node}"
    state.mkdir(exist_ok=True)
    argv = [
        sys.executable, "-m", "supervisor.cli", "run", "--config", str(config), "--node", node,
        "--state-dir", str(state), "--metrics-port", str(HTTP_PORT), "--membership-key-file", str(key),
        # The lab's client namespace reads every node's /status: a private
        # network the lab made, so remote /status is fine here.
        "--status-access", "any",
    ]  # fmt: skip
    if announcers is not None:
        argv += ["--announcers", announcers]
    argv += extra_args
    # The child keeps its own copy of the descriptor; ours closes at once.
    with open(workdir / f"{node}.log", "ab") as log:
        return lab.spawn(node, *argv, stdout=log.fileno(), stderr=subprocess.STDOUT,
                         env=dict(env) if env is not None else None)
