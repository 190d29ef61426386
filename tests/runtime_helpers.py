"""Shared by the runtime tests and bench/runtime.py: configs, free ports, /proc helpers."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METALLOID = REPO / ".venv" / "bin" / "metalloid"

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
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



def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the server may not be up yet
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check} (last error: {last_error})")


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


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def run_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["METALLOID_EXTRA_PLUGINS"] = "tests.recording_plugin:plugin"
    env.update(extra)
    return env
