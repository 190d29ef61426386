"""Membership starts with the others when the file lists a peer, and on the reload that adds the first one."""

from __future__ import annotations

import argparse
import signal
import socket
from pathlib import Path

import pytest

from supervisor.commands import run
from supervisor.config.loading import load_config
from supervisor.supervising.state import MEMBERSHIP
from tests.runtime_helpers import config_text, wait_for
from tests.test_supervisor_process import Node

SETTINGS = """\
---
apiVersion: metalloid.io/v1alpha1
kind: Settings
metadata:
  name: metalloid
spec:
  membership:
    port: {port}
"""

NODE = """\
---
apiVersion: v1
kind: Node
metadata:
  name: {name}
status:
  addresses:
    - type: InternalIP
      address: {address}
"""


def _config(port: int, *nodes: tuple[str, str]) -> str:
    text = config_text(3, node=None) + SETTINGS.format(port=port)
    return text + "".join(NODE.format(name=name, address=address) for name, address in nodes)


def test_a_reload_adding_a_peer_starts_membership_heartbeats(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        # The peer n2 is this socket: heartbeats to it prove membership runs.
        peer.bind(("127.0.0.2", 0))
        peer.settimeout(10)
        port = peer.getsockname()[1]
        node = Node(tmp_path, announcers="recording", config=_config(port, ("n1", "127.0.0.1")),
                    extra_args=("--insecure",))
        try:
            node.wait_ready()
            assert "membership" not in node.workers()  # alone: nothing to run

            node.config.write_text(_config(port, ("n1", "127.0.0.1"), ("n2", "127.0.0.2")))
            node.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: node.workers().get("membership", {}).get("state") == "RUNNING", 15,
                     what=f"membership RUNNING; stderr:\n{node.log()}")
            data, sender = peer.recvfrom(65536)
            assert data and sender[0] == "127.0.0.1"
            node.wait_ready()
        finally:
            node.close()


@pytest.mark.parametrize(("nodes", "waits"), [
    ((("n1", "127.0.0.1"), ("n2", "127.0.0.2")), False),
    ((("n1", "127.0.0.1"),), True),
    ((), True),
], ids=["a-peer-starts-it-at-once", "alone-waits", "no-nodes-waits"])
def test_membership_starts_with_the_others_only_when_the_file_lists_a_peer(
        tmp_path: Path, nodes: tuple[tuple[str, str], ...], waits: bool) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_config(7946, *nodes))
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    args = parser.parse_args(["--config", str(path), "--node", "n1", "--state-dir", str(tmp_path / "state")])
    specs = run.build_specs(args, load_config([str(path)]).config, ())
    (membership,) = [s for s in specs if s.role == MEMBERSHIP]
    assert membership.needs_peers is waits
