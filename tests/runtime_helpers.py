"""Shared by the tests and bench/: configs, free ports, the one `wait_for` poll, /proc helpers."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
METALLOID = REPO / ".venv" / "bin" / "metalloid"
T = TypeVar("T")

POOL = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: {name}
  namespace: metallb-system
spec:
  addresses:
    - {addresses}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: {name}
  namespace: metallb-system
spec:
  ipAddressPools: [{name}]
"""

SERVICE = """\
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
spec:
  type: LoadBalancer
  ports:
    - port: 80
"""

NODE = """\
---
apiVersion: v1
kind: Node
metadata:
  name: {name}
"""


def config_text(services: int, *, pool: str = "first-pool", addresses: str = "10.20.0.0/16",
                node: str | None = "n1", names: list[str] | None = None) -> str:
    text = POOL.format(name=pool, addresses=addresses)
    for name in names if names is not None else [f"svc-{i}" for i in range(services)]:
        text += SERVICE.format(name=name, namespace="default")
    if node:
        text += NODE.format(name=node)
    return text


def free_port(address: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port nothing listens on now at `address` (TCP by default; SOCK_DGRAM for UDP)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def get_text(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()



def wait_for(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.02, what: str = "", *,
             context: Callable[[], str] | None = None) -> T:
    """Poll `check` every `interval` seconds until it returns something truthy; return that.

    The one poll every test and bench shares. An exception from `check` counts
    as "not yet" (a server still starting, an object not written yet) and the
    last one is named on timeout, with the last value and `context()` (a lab's
    logs, say) so the failure says what was seen.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    value: T | None = None
    while True:
        try:
            value = check()
        except Exception as exc:
            last_error = exc
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    extra = f"\n{context()}" if context is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check} "
                         f"(last value {value!r}, last error: {last_error}){extra}")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        # Gone; reading /proc of a process exiting at that moment can also fail with ESRCH.
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def descendants_of(pid: int) -> list[int]:
    result: list[int] = []
    todo = children_of(pid)
    while todo:
        child = todo.pop()
        result.append(child)
        todo += children_of(child)
    return result


def smaps_kib(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/smaps_rollup ("Rss", "Pss", ...)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        value = rest.split()
        if value and value[0].isdigit():
            fields[key] = int(value[0])
    return fields


def pss_kib(pid: int) -> int:
    return smaps_kib(pid).get("Pss", 0)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (/proc/PID/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["METALLOID_EXTRA_PLUGINS"] = "tests.recording_plugin:plugin"
    env.update(extra)
    return env
