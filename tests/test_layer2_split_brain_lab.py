"""A real split brain on two `metalloid run` nodes: the lower MAC keeps the IP, healing moves it to the winner.

Each node gets its own copy of the config in which the *other* node's
InternalIP is wrong (10.0.10.201), so heartbeats never arrive: both nodes are
alone and both announce 10.0.10.10. Observed from the client: `arping` sees
exactly one MAC (the lower one), the client's kernel resolves to it, the
duplicates counter rose, the higher-MAC node's /status shows the yield, and
it holds (no node re-announces while the split lasts).
Then the configs are corrected (the file watcher reloads them), heartbeats
flow, and the client's neighbour entry ends on the election winner's MAC
without the client sending anything: gratuitous ARP moved it.

One small lab (two nodes and a client, namespaces `mlt<pid>s-*`), every
process stopped by PID and every namespace removed, even on failure.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from plugins.layer2.conflicts import YIELD_HOLD_SECONDS
from plugins.layer2.gratuitous import BURST_DURATION
from supervisor.electing.election import rank
from supervisor.lab.netns import Lab
from tests.lab_nodes import CLIENT, LabNodes, lab_of, wait_for, write_atomically

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NODES = ("n1", "n2")
VIP = "10.0.10.10"
WRONG = "10.0.10.201"  # nobody: heartbeats sent there are lost
DUPLICATES = "metalloid_layer2_duplicate_announcements_total"

# One datagram to the VIP: the client's kernel resolves it (creates the neighbour entry).
RESOLVE = f"import socket\nsocket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'x',('{VIP}',9))\n"


def two_node_config() -> str:
    """The homelab example without its third Node."""
    docs = (ROOT / "examples" / "homelab.yaml").read_text().split("\n---\n")
    return "\n---\n".join(d for d in docs if "name: n3\n" not in d) + "\n"


def address_line(node: str) -> str:
    return f"address: 10.0.10.{NODES.index(node) + 1}\n"


def split_config(text: str, node: str) -> str:
    """`node`'s copy: every other node's InternalIP is wrong."""
    for other in NODES:
        if other != node:
            assert address_line(other) in text
            text = text.replace(address_line(other), f"address: {WRONG}\n")
    return text


class Pair(LabNodes):
    def __init__(self, lab: Lab, workdir: Path) -> None:
        super().__init__(lab, workdir, NODES)
        self.good = two_node_config()

    def config(self, node: str) -> Path:
        return self.workdir / f"{node}.yaml"

    def write(self, node: str, text: str) -> None:
        write_atomically(self.config(node), text)

    def start(self, node: str) -> None:
        self.start_node(node, self.config(node), "layer2")

    def layer2(self, status: dict[str, Any] | None) -> dict[str, Any]:
        return ((status or {}).get("plugins") or {}).get("layer2") or {}

    def announcers(self) -> set[str]:
        """The nodes whose layer 2 announces the VIP."""
        return {
            n
            for n, s in self.statuses().items()
            if any(a["ip"] == VIP for a in self.layer2(s).get("announcements", []))
        }

    def duplicates(self) -> dict[str, float]:
        found = {}
        for node, text in self.fetch("/metrics").items():
            match = re.search(rf'^{DUPLICATES}\{{[^}}]*ip="{re.escape(VIP)}"[^}}]*\}} (\S+)$', text or "", re.M)
            found[node] = float(match.group(1)) if match else 0.0
        return found



@pytest.fixture
def pair() -> Iterator[Pair]:
    with lab_of(NODES, tag="s", name="split-brain-lab") as (lab, workdir):
        yield Pair(lab, workdir)


def test_split_brain_keeps_the_lower_mac_and_healing_moves_the_client_to_the_winner(pair: Pair) -> None:
    lab = pair.lab
    # The hard case on purpose: the election winner has the HIGHER MAC, so it
    # yields during the split and must take the IP back (and the client) on healing.
    winner_by_hash, loser_by_hash = rank(NODES, ip_address(VIP))
    lab.run(winner_by_hash, "ip", "link", "set", "eth0", "address", "02:00:00:00:10:02")
    lab.run(loser_by_hash, "ip", "link", "set", "eth0", "address", "02:00:00:00:10:01")
    macs = {n: lab.mac(n) for n in NODES}
    # Fixed-width lower-case hex: string order is byte order.
    low, high = sorted(NODES, key=lambda n: macs[n])
    assert (low, high) == (loser_by_hash, winner_by_hash)
    for node in NODES:
        pair.write(node, split_config(pair.good, node))
        pair.start(node)
    wait_for("both nodes' /readyz", lambda: all(pair.fetch("/readyz").values()), 30, pair)

    # -- the split brain resolves to the lower MAC ---------------------------------
    def resolved() -> bool:
        statuses = pair.statuses()
        yielded = pair.layer2(statuses[high]).get("yielded", [])
        return any(y["ip"] == VIP and y["to_mac"] == macs[low] for y in yielded) and pair.announcers() == {low}

    wait_for(f"{high} to yield {VIP} to {low}'s lower MAC", resolved, 15, pair)
    assert pair.arping(VIP, count=3, deadline=2)[1] == {macs[low]}, "exactly one MAC answers: the lower one"
    lab.run(CLIENT, sys.executable, "-c", RESOLVE)
    wait_for("the client to resolve the VIP to the lower MAC",
             lambda: lab.neighbour(CLIENT, VIP)[0] == macs[low], 5, pair)  # fmt: skip
    assert max(pair.duplicates().values()) >= 1, "the duplicate announcements were counted"
    status = pair.statuses()[high]
    election = next(e for e in pair.layer2(status)["elections"] if e["ip"] == VIP)
    assert election["not_announced_reason"].startswith(f"yielded to {macs[low]}")
    # It holds: the keeper answers the yielder's probes, so the yield never
    # lapses into another round of both announcing (checked past the time a
    # yield would expire without them: the keeper's burst plus the hold).
    since = pair.layer2(status)["yielded"][0]["since"]
    deadline = time.monotonic() + BURST_DURATION + YIELD_HOLD_SECONDS
    while time.monotonic() < deadline:
        yielded = pair.layer2(pair.statuses()[high]).get("yielded", [])
        assert [y["since"] for y in yielded] == [since], f"the yield lapsed\n{pair.logs()}"
        assert pair.announcers() == {low}
    assert lab.neighbour(CLIENT, VIP)[0] == macs[low]

    # -- healing: the election decides, gratuitous ARP moves the client ------------
    for node in NODES:
        pair.write(node, pair.good)

    def healed() -> str | None:
        statuses = pair.statuses()
        alive = all(
            s is not None and sorted(m["name"] for m in s["members"] if m["alive"]) == list(NODES)
            for s in statuses.values()
        )
        winners = {pair.winner(VIP, s) for s in statuses.values()}
        return winners.pop() if alive and len(winners) == 1 else None

    wait_for("both nodes to hear each other and agree on a winner", lambda: healed() is not None, 20, pair)
    winner = healed()
    assert winner == winner_by_hash == high
    # The client sends nothing from here on: only gratuitous ARP can move its entry.
    wait_for(f"the client's neighbour entry to move to the winner {winner} ({macs[winner]})",
             lambda: lab.neighbour(CLIENT, VIP)[0] == macs[winner], 10, pair)  # fmt: skip
    wait_for(f"only the winner {winner} to announce", lambda: pair.announcers() == {winner}, 10, pair)
    assert all(not pair.layer2(s).get("yielded") for s in pair.statuses().values()), "no yield after healing"
    assert lab.neighbour(CLIENT, VIP)[0] == macs[winner]
