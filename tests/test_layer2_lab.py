"""Layer 2 on a real wire: a client namespace's kernel resolves what the announcer answers.

One module-scoped lab (tests/layer2_lab.py): client ns <-> node ns over a veth
pair, the announcer running in the node ns in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.layer2.kernel_arp import LEASE_SECONDS
from tests.layer2_lab import Lab, running, sh

pytestmark = pytest.mark.lab

FAKE_MAC = "02:de:ad:be:ef:01"

SEND_FRAMES = r"""
import json, socket, sys
frames = [bytes.fromhex(h) for h in json.loads(sys.argv[1])]
repeat = int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(repeat):
    for f in frames:
        s.send(f)
"""

GARBAGE = r"""
import os, random, socket, struct
random.seed(4)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
target = bytes([10, 99, 0, 10])
for i in range(30000):
    kind = i % 4
    body = os.urandom(random.randrange(0, 90))
    if kind == 0:    # random bytes after an ARP ethertype
        frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + body
    elif kind == 1:  # an ARP request for our IP with a wrong length field
        frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x800, 6, 16, 1) + body[:20] + target
    elif kind == 2:  # an IPv6 frame claiming ICMPv6 with hop limit 255
        frame = b"\x33\x33\xff\x00\x00\x10" + b"\x02" * 6 + b"\x86\xdd" + b"\x60\x00\x00\x00\x00\x20\x3a\xff" + body
    else:            # a truncated ARP request for our IP
        frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x800, 6, 4, 1)
    try:
        s.send(frame)
    except OSError:
        pass
"""


KERNEL_FILTERS = r"""
import json, socket, struct, sys
sys.path.insert(0, sys.argv[1])
from plugins.layer2 import bpf, frames
mac = bytes.fromhex("02000000ee01")
sockets = {}
for name, program in (("arp", bpf.ARP_FILTER), ("ndp", bpf.NDP_FILTER)):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    bpf.attach(s, program)
    s.bind(("eth0", 0x0003))  # ETH_P_ALL: sees our own outgoing frames, through the filter
    s.settimeout(0.3)
    sockets[name] = s
ipv4_udp = b"\xff" * 6 + mac + b"\x08\x00" + b"\x45" + b"\x00" * 40
ipv6_udp = b"\x33\x33\x00\x00\x00\x01" + mac + b"\x86\xdd" + b"\x60\x00\x00\x00\x00\x08\x11\xff" + b"\x00" * 40
sent = {
    "arp": frames.gratuitous_arp(mac, bytes([10, 99, 0, 77]))[0],
    "ns": frames.build_ns(eth_src=mac, src_ip=bytes(15) + b"\x01", target=bytes(15) + b"\x77"),
    "ipv4": ipv4_udp,
    "ipv6": ipv6_udp,
}
out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
out.bind(("eth0", 0))
for frame in sent.values():
    out.send(frame)
got = {}
for name, s in sockets.items():
    got[name] = []
    try:
        while True:
            data = s.recv(256)
            got[name].append(next(k for k, f in sent.items() if data == f[: len(data)]))
    except (TimeoutError, StopIteration):
        pass
print(json.dumps(got))
"""


def test_kernel_filters_pass_arp_and_ndp_only(lab: Lab) -> None:
    from tests.layer2_lab import ROOT

    got = json.loads(lab.client_python(KERNEL_FILTERS, str(ROOT)).stdout)
    assert got == {"arp": ["arp"], "ndp": ["ns"]}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running("l2") as (lab, ready):
        assert ready["sockets_ready"] is True
        yield lab


def test_sockets_are_open_before_anything_is_owned(lab: Lab) -> None:
    status = lab.status()
    assert status["announcements"] == [] or status["sockets_ready"]
    assert [i["name"] for i in status["interfaces"]] == ["eth0"]


def test_client_resolves_the_announced_ip_to_the_node_mac(lab: Lab) -> None:
    lab.announce("web", "10.99.0.10")
    code, out = lab.arping("10.99.0.10")
    assert code == 0 and lab.node_mac() in out.lower()
    # The client's own kernel resolution, not only arping's.
    lab.in_client("ip", "neigh", "flush", "dev", "eth0")
    lab.in_client("ping", "-c", "1", "-W", "1", "10.99.0.10")
    assert lab.neighbour("10.99.0.10") == lab.node_mac()
    metrics = lab.status()["metrics"]
    assert metrics["metallb_layer2_responses_sent{ip=10.99.0.10}"] >= 2
    assert metrics["metallb_speaker_announced{ip=10.99.0.10,node=n1,protocol=layer2,service=default/web}"] == 1


def test_an_unassigned_ip_gets_no_reply(lab: Lab) -> None:
    lab.announce("web", "10.99.0.10")
    code, _ = lab.arping("10.99.0.11")
    assert code != 0


def test_a_withdrawn_ip_gets_no_reply_and_loses_its_metric(lab: Lab) -> None:
    lab.announce("gone", "10.99.0.20")
    assert lab.arping("10.99.0.20")[0] == 0
    status = lab.announce("gone")
    assert not any(k.startswith("metallb_speaker_announced{ip=10.99.0.20") for k in status["metrics"])
    assert lab.arping("10.99.0.20")[0] != 0


def test_takeover_gratuitous_arp_switches_a_fresh_client_entry(lab: Lab) -> None:
    # An entry updated just now (under the kernel's 1 s locktime): only a
    # proper gratuitous form overrides it.
    lab.in_client("ip", "neigh", "replace", "10.99.0.12", "lladdr", FAKE_MAC, "dev", "eth0", "nud", "reachable")
    lab.announce("moved", "10.99.0.12")
    took = lab.wait_neighbour("10.99.0.12", lab.node_mac(), timeout=0.9)
    assert took < 0.9


def test_ipv6_neighbour_resolution(lab: Lab) -> None:
    lab.announce("web6", "fd00:99::10")
    lab.in_client("ip", "-6", "neigh", "flush", "dev", "eth0")
    lab.in_client("ping", "-6", "-c", "1", "-W", "1", "fd00:99::10")
    assert lab.neighbour("fd00:99::10") == lab.node_mac()
    assert lab.neighbour("fd00:99::11") is None


def test_unsolicited_na_switches_a_client_ipv6_entry(lab: Lab) -> None:
    lab.in_client("ip", "-6", "neigh", "replace", "fd00:99::12", "lladdr", FAKE_MAC, "dev", "eth0", "nud", "stale")
    lab.announce("moved6", "fd00:99::12")
    lab.wait_neighbour("fd00:99::12", lab.node_mac(), timeout=1.0)


def test_local_bind_serves_the_ip_and_is_removed_on_withdraw(lab: Lab) -> None:
    lab.announce("local", "10.99.0.13", bind_local=True)
    try:
        assert lab.in_client("ping", "-c", "1", "-W", "1", "10.99.0.13").returncode == 0
        out = sh("ip", "-n", lab.node, "addr", "show", "lo").stdout
        assert "10.99.0.13/32" in out and "lo:mlb" in out
        # The kernel must not answer ARP for it on its own (arp_ignore=1).
        sysctl = sh("ip", "netns", "exec", lab.node, "sysctl", "-n", "net.ipv4.conf.all.arp_ignore")
        assert sysctl.stdout.strip() == "1"
    finally:
        lab.announce("local", bind_local=True)
    assert "10.99.0.13" not in sh("ip", "-n", lab.node, "addr", "show", "lo").stdout


def gratuitous_sent(lab: Lab, ip: str) -> float:
    return float(lab.status()["metrics"].get(f"metallb_layer2_gratuitous_sent{{ip={ip}}}", 0))


def test_link_down_and_up_is_announced_again(lab: Lab) -> None:
    lab.announce("web", "10.99.0.10")
    # Let the takeover burst (5 rounds of 2 frames) finish first, so only a
    # re-announcement can correct the entry below.
    deadline = time.monotonic() + 6
    while gratuitous_sent(lab, "10.99.0.10") < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    before = gratuitous_sent(lab, "10.99.0.10")
    assert before >= 10
    for ns, state in ((lab.node, "down"), (lab.node, "up")):
        lab.in_client("ip", "-n", ns, "link", "set", "eth0", state, check=True)
        time.sleep(0.05)
    lab.wait_carrier()
    # The carrier loss flushed the client's entries; this stale one would never
    # be corrected without the re-announcement.
    lab.in_client("ip", "neigh", "replace", "10.99.0.10", "lladdr", FAKE_MAC, "dev", "eth0", "nud", "stale")
    lab.wait_neighbour("10.99.0.10", lab.node_mac(), timeout=3.0)
    assert gratuitous_sent(lab, "10.99.0.10") > before
    assert lab.arping("10.99.0.10")[0] == 0


def test_another_mac_claiming_our_ip_is_reported_as_duplicate(lab: Lab) -> None:
    from plugins.layer2 import frames

    lab.announce("web", "10.99.0.10")
    # The highest unicast MAC: the node keeps the IP (the lower MAC keeps,
    # plugins/layer2/conflicts.py), so the tests after this one are not left
    # facing a yielded IP.
    fake = frames.mac_bytes("fe:ff:ff:ff:ff:ff")
    request_form, _ = frames.gratuitous_arp(fake, bytes([10, 99, 0, 10]))
    lab.client_python(SEND_FRAMES, json.dumps([request_form.hex()]), "3")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        dups = lab.status()["duplicates"]
        if dups:
            break
        time.sleep(0.05)
    assert dups and dups[0]["mac"] == "fe:ff:ff:ff:ff:ff" and dups[0]["ip"] == "10.99.0.10"
    assert lab.status()["metrics"]["metalloid_layer2_duplicate_announcements_total{ip=10.99.0.10}"] >= 1
    assert lab.arping("10.99.0.10")[0] == 0, "kept: still answered"


def test_a_garbage_flood_is_survived(lab: Lab) -> None:
    lab.announce("web", "10.99.0.10")
    lab.client_python(GARBAGE)
    assert lab.harness is not None and lab.harness.poll() is None
    code, out = lab.arping("10.99.0.10")
    assert code == 0 and lab.node_mac() in out.lower()
    assert "Traceback" not in lab.log_path.read_text()


BURST = r"""
import json, socket, struct, sys
from supervisor.lab.flood import flood
count, target = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind(("eth0", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
mac = s.getsockname()[4]
frame = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x800, 6, 4, 1) + mac
         + socket.inet_aton("10.99.0.1") + b"\x00" * 6 + socket.inet_aton(target))
sent, _ = flood(s, frame, count * 10, 0.1)
print(json.dumps({"sent": sent}))
"""


def _softnet_drops() -> int:
    """Frames the kernel dropped before any socket (backlog full), all CPUs: column 2 of softnet_stat."""
    return sum(int(line.split()[1], 16) for line in Path("/proc/net/softnet_stat").read_text().splitlines())


def test_a_burst_beyond_the_socket_queue_is_answered_or_counted_as_dropped(lab: Lab) -> None:
    """With the announcer stopped, a burst fills the socket queue; afterwards every request is answered or a drop."""
    lab.announce("web", "10.99.0.10")
    before = lab.status()
    metric = "{}{{ip=10.99.0.10}}"
    seen0 = before["metrics"].get(metric.format("metallb_layer2_requests_received"), 0)
    sent0 = before["metrics"].get(metric.format("metallb_layer2_responses_sent"), 0)
    drops0 = sum(before["socket_drops"].values())
    softnet0 = _softnet_drops()
    assert lab.harness is not None
    os.kill(lab.harness.pid, signal.SIGSTOP)
    try:
        # The kernel's answers stop with the lease the stopped announcer no
        # longer renews: from then on, requests queue for the responder.
        time.sleep(LEASE_SECONDS + 0.1)
        # ~3x what the 16 MiB receive queue holds of these frames.
        sent = json.loads(lab.client_python(BURST, "60000", "10.99.0.10").stdout)["sent"]
    finally:
        os.kill(lab.harness.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while True:
        status = lab.status()
        seen = status["metrics"].get(metric.format("metallb_layer2_requests_received"), 0) - seen0
        replied = status["metrics"].get(metric.format("metallb_layer2_responses_sent"), 0) - sent0
        dropped = sum(status["socket_drops"].values()) - drops0
        if seen + dropped >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert dropped > 0, "the burst was meant to overflow the queue"
    assert replied == seen > 0, "every request read was answered"
    # Every request is either read or counted as a socket drop, except what the
    # kernel dropped before the socket (its backlog; counted in softnet_stat).
    assert seen + dropped <= sent <= seen + dropped + (_softnet_drops() - softnet0)
