"""The lab itself: namespaces made, connected, and always removed (also on failure)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from supervisor.lab import wire
from supervisor.lab.netns import Lab, list_netns

pytestmark = pytest.mark.lab


def test_hosts_reach_each_other_and_everything_is_removed() -> None:
    prefix = f"mlt{os.getpid() % 10000}a"
    with Lab(prefix=prefix, hosts=["n1", "client"], host_index={"client": 100}) as lab:
        assert {f"{prefix}-br", f"{prefix}-n1", f"{prefix}-client"} <= set(list_netns())
        assert lab.run("client", "ping", "-c1", "-W2", lab.host("n1").ip, check=False).returncode == 0
        assert lab.neighbour("client", lab.host("n1").ip)[0] == lab.mac("n1")
        sleeper = lab.spawn("n1", sys.executable, "-c", "import time; time.sleep(60)")
    assert sleeper.poll() is not None, "a process started in the lab outlived it"
    assert not [n for n in list_netns() if n.startswith(prefix + "-")]


def test_failure_inside_the_lab_still_removes_it() -> None:
    prefix = f"mlt{os.getpid() % 10000}b"
    with pytest.raises(RuntimeError, match="boom"), Lab(prefix=prefix, hosts=["n1"]):
        raise RuntimeError("boom")
    assert not [n for n in list_netns() if n.startswith(prefix + "-")]


def test_cut_cable_stops_traffic_and_restoring_it_resumes() -> None:
    prefix = f"mlt{os.getpid() % 10000}c"
    with Lab(prefix=prefix, hosts=["n1", "client"], host_index={"client": 100}) as lab:
        target = lab.host("n1").ip
        lab.link("n1", up=False)
        assert lab.run("client", "ping", "-c1", "-W1", target, check=False).returncode != 0
        lab.link("n1", up=True)
        assert lab.run("client", "ping", "-c1", "-W2", target, check=False).returncode == 0


def test_wire_sees_when_a_host_sends_and_cuts_its_cable() -> None:
    # bench/failover.py fails each daemon at the same points of its heartbeat cycle from this.
    prefix = f"mlt{os.getpid() % 10000}d"
    sender = "import socket, sys, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n" \
             "while True:\n    s.sendto(b'beat', (sys.argv[1], int(sys.argv[2])))\n    time.sleep(0.05)\n"
    with Lab(prefix=prefix, hosts=["n1", "client"], host_index={"client": 100}) as lab:
        lab.spawn("n1", sys.executable, "-c", sender, lab.host("client").ip, "7946")
        lab.spawn("client", sys.executable, "-c", sender, lab.host("n1").ip, "9999")
        before = time.monotonic()
        sent = wire.next_sent(lab, "n1", wire.udp_to(7946), timeout=2.0)
        assert sent is not None and before <= sent <= time.monotonic()
        # n1 receives datagrams to port 9999 all the time, and sends no VRRP.
        assert wire.next_sent(lab, "n1", wire.udp_to(9999), timeout=0.3) is None
        assert wire.next_sent(lab, "n1", wire.ip_protocol(wire.VRRP_PROTOCOL), timeout=0.3) is None
        cable = wire.Cable(lab)
        try:
            cable.set("n1", up=False)
            assert lab.run("client", "ping", "-c1", "-W1", lab.host("n1").ip, check=False).returncode != 0
            cable.set("n1", up=True)
            assert lab.run("client", "ping", "-c1", "-W2", lab.host("n1").ip, check=False).returncode == 0
        finally:
            cable.close()
