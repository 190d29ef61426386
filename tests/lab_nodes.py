"""What the multi-node lab tests share: real `metalloid run` nodes in a `Lab`, observed from the client.

A test module subclasses `LabNodes` for its own cluster (which config each node
reads, which announcers run) and gets the rest: starting a node with its own
state dir and log, atomic config writes, /status and /metrics fetched over the
lab network from the client namespace, the layer 2 election winner, arping.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from supervisor.lab.netns import Lab, list_netns, require_root
from supervisor.lab.nodes import FETCH, HTTP_PORT, spawn_node
from tests.runtime_helpers import wait_for as shared_wait_for

CLIENT = "client"

MAC = re.compile(r"from ((?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2})")


@contextmanager
def lab_of(nodes: tuple[str, ...], *, tag: str, name: str) -> Iterator[tuple[Lab, Path]]:
    """A netns lab of `nodes` and the client (host 100), and a fresh work directory.

    Fails the test without root. Both are removed afterwards, also on failure
    (the failure messages carry the nodes' logs), and no namespace of this lab
    may be left. `tag` keeps the namespace prefix apart from other labs' in the
    same run; `name` names the work directory.
    """
    problem = require_root()
    if problem:
        pytest.fail(problem)
    prefix = f"mlt{os.getpid() % 10000}{tag}"
    workdir = Path(tempfile.mkdtemp(prefix=f"metalloid-{name}-"))
    lab = Lab(prefix=prefix, hosts=[*nodes, CLIENT], host_index={CLIENT: 100})
    try:
        lab.create()
        yield lab, workdir
    finally:
        lab.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    assert not [n for n in list_netns() if n.startswith(prefix + "-")]


def write_atomically(path: Path, text: str) -> None:
    """As an editor or a ConfigMap would: a node never reads half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class LabNodes:
    """metalloid nodes in `lab`, their files in `workdir`, one shared membership key."""

    def __init__(self, lab: Lab, workdir: Path, nodes: tuple[str, ...]) -> None:
        self.lab = lab
        self.workdir = workdir
        self.nodes = nodes
        self.key = workdir / "membership.key"
        self.key.write_text(secrets.token_hex(32))
        self.key.chmod(0o600)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_node(self, node: str, config: Path, announcers: str, env: Mapping[str, str] | None = None,
                   extra_args: Sequence[str] = ()) -> None:
        self.procs[node] = spawn_node(self.lab, node, config=config, key=self.key, workdir=self.workdir,
                                      announcers=announcers, env=env, extra_args=extra_args)

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(
            f"--- {node}.log (tail)\n" + (self.workdir / f"{node}.log").read_text(errors="replace")[-tail:]
            for node in self.nodes if (self.workdir / f"{node}.log").exists()
        )  # fmt: skip

    def fetch(self, path: str, nodes: tuple[str, ...] | None = None) -> dict[str, str | None]:
        nodes = nodes or self.nodes
        urls = [f"http://{self.lab.host(n).ip}:{HTTP_PORT}{path}" for n in nodes]
        out = self.lab.run(CLIENT, sys.executable, "-c", FETCH, *urls, check=False, timeout=15)
        try:
            bodies = json.loads(out.stdout)
        except ValueError:
            bodies = [None] * len(nodes)
        return dict(zip(nodes, bodies, strict=True))

    def statuses(self, nodes: tuple[str, ...] | None = None) -> dict[str, dict[str, Any] | None]:
        return {n: json.loads(body) if body else None for n, body in self.fetch("/status", nodes).items()}

    @staticmethod
    def winner(ip: str, status: dict[str, Any] | None) -> str | None:
        """The layer 2 election's winner for `ip` in one node's /status."""
        for svc in (status or {}).get("services", []):
            election = (svc.get("elections") or {}).get("layer2") or {}
            if election.get("ip") == ip:
                return election.get("winner")
        return None

    def arping(self, ip: str, count: int = 2, deadline: float = 1.0) -> tuple[int, set[str]]:
        """arping's exit code and the set of MACs that replied, from the client."""
        out = self.lab.run(CLIENT, "arping", "-c", str(count), "-w", f"{deadline:g}", "-i", "eth0", ip, check=False)
        return out.returncode, {m.lower() for m in MAC.findall(out.stdout)}


def wait_for(what: str, check: Callable[[], bool], timeout: float, nodes: LabNodes) -> None:
    """The shared poll at the lab's pace (a check may run commands in namespaces), failing with the nodes' logs."""
    shared_wait_for(check, timeout, 0.2, what, context=nodes.logs)
