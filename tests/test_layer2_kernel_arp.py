"""ARP answered in the kernel (plugins/layer2/kernel_arp.py): the same answers as the responder, and only while owned.

Two parts. The program itself runs under BPF_PROG_TEST_RUN in a namespace
of our own (a veth `eth0` the program is attached to), on hand-made frames
and on fuzzed ones, against what the user-space responder decides for the
same frame: the kernel answers exactly the requests the responder would, with
the same bytes, and hands everything else on. Then a lab (client ns <-> node
ns) with the real announcer: a client resolves through the kernel while the
announcer is stopped, the answers stop when its lease lapses, and a SIGKILL
ends them at once, however long the lease.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from plugins.layer2 import bpf, frames
from plugins.layer2 import responder as responder_module
from plugins.layer2.kernel_arp import LEASE_SECONDS, KernelArp
from plugins.layer2.responder import Responder
from supervisor.api import ebpf
from supervisor.lab.netns import NamespaceThread
from tests.layer2_lab import ROOT, Lab, running, sh

pytestmark = pytest.mark.lab
OURS = bytes.fromhex("0200000000a1")
ALSO_OURS = bytes.fromhex("0200000000a2")  # another interface of this node
CLIENT = bytes.fromhex("0200000000c1")
OWNED = ipaddress.ip_address("10.0.10.10").packed
ALSO_OWNED = ipaddress.ip_address("10.0.10.12").packed
WATCHED = ipaddress.ip_address("10.0.10.20").packed
ELSEWHERE = ipaddress.ip_address("10.0.10.30").packed  # owned, on another interface only
NOT_OWNED = ipaddress.ip_address("10.0.10.11").packed
CLIENT_IP = ipaddress.ip_address("10.0.10.1").packed
OWNED6 = ipaddress.ip_address("fd00:10::10").packed
WATCHED6 = ipaddress.ip_address("fd00:10::20").packed
ELSEWHERE6 = ipaddress.ip_address("fd00:10::30").packed
NOT_OWNED6 = ipaddress.ip_address("fd00:10::11").packed
CLIENT6 = ipaddress.ip_address("fd00:10::1").packed
_TEST_RUN_MINIMUM = {b"\x08\x00": 14 + 20, b"\x86\xdd": 14 + 40}
# Nothing renews the rig's lease on a tick: one that outlasts the module.
RIG_LEASE = 3600.0


class Rig:
    """The program on a veth eth0 in its own namespace, and a responder (no kernel) with the same state."""

    def __init__(self, ns: NamespaceThread, kernel: KernelArp, index: int, dev_mac: bytes) -> None:
        self.ns, self.kernel, self.index, self.dev_mac = ns, kernel, index, dev_mac
        self.responder = Responder()
        # Normally learnt from the ports it opens; this one opens none.
        self.responder._our_macs = frozenset({OURS, ALSO_OURS})
        owned = {OWNED: frozenset({"eth0"}), ALSO_OWNED: frozenset({"eth0"}), ELSEWHERE: frozenset({"eth1"})}
        watched = {WATCHED: frozenset({"eth0"})}
        owned6 = {OWNED6: frozenset({"eth0"}), ELSEWHERE6: frozenset({"eth1"})}
        watched6 = {WATCHED6: frozenset({"eth0"})}
        self.responder.set_owned(owned, owned6)
        self.responder.set_watched(watched, watched6)
        self.owned, self.watched, self.owned6, self.watched6 = owned, watched, owned6, watched6
        self.sync(owned, watched)

    def sync(self, owned: dict[bytes, frozenset[str]], watched: dict[bytes, frozenset[str]],
             owned6: dict[bytes, frozenset[str]] | None = None) -> None:  # fmt: skip
        # eth1 has no link: its entries must not reach the map.
        indexes = {"eth0": self.index, "eth1": self.index + 100}
        v6 = self.owned6 if owned6 is None else owned6
        self.ns.run(lambda: self.kernel.sync(owned, watched, indexes, self.responder._our_macs,
                                             owned6=v6, watched6=self.watched6))  # fmt: skip
        self.kernel.renew(seconds=RIG_LEASE)

    def kernel_answer(self, frame: bytes) -> bytes | None:
        # BPF_PROG_TEST_RUN refuses an IPv4 or IPv6 frame shorter than its IP
        # header (EINVAL); zeros after it change nothing for an ARP program.
        frame = frame.ljust(_TEST_RUN_MINIMUM.get(frame[12:14], 0), b"\0")
        verdict, out = self.ns.run(lambda: self.kernel.test_run(frame, ifindex=self.index))
        if verdict == ebpf.TCX_NEXT:
            return None
        assert verdict == ebpf.TCX_REDIRECT, verdict
        return out

    def user_answer(self, frame: bytes) -> bytes | None:
        """What the responder sends for `frame` on eth0, if its socket's filter lets it in."""
        if frame[12:14] == b"\x86\xdd":
            if bpf.run(bpf.NDP_FILTER, frame) == 0:
                return None
            port = responder_module.Port(name="eth0", index=self.index, mac=OURS, arp=None, ndp=None)  # type: ignore[arg-type]
            advertisements, _ = self.responder._answer_ndp(port, [frame])
            assert len(advertisements) <= 1
            return advertisements[0] if advertisements else None
        if bpf.run(bpf.ARP_FILTER, frame) == 0:
            return None
        slot = frame[:64].ljust(64, b"\0")
        head = OURS + responder_module._ARP_REPLY_PREFIX + OURS  # as the responder's `_drain_arp` builds it
        replies, _ = self.responder._answer_arp("eth0", head, slot, [min(len(frame), 64)])
        assert len(replies) <= 1
        return replies[0] if replies else None

    def reaches_the_host(self, frame: bytes) -> bool:
        """Whether the kernel would hand `frame` to the host at all (its destination is us, or a group)."""
        return bool(frame[0] & 1) or frame[:6] == self.dev_mac


def kernel_or_skip(**kwargs: Any) -> KernelArp:
    """A KernelArp; skipped where the host cannot load one (no CAP_BPF), never when the verifier refuses it."""
    try:
        return KernelArp(**kwargs)
    except ebpf.Refused:
        raise  # a fault in the program: the test fails
    except ebpf.Unavailable as exc:
        pytest.skip(f"no eBPF here: {exc}")


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    name = f"mlka{os.getpid()}"[-12:]
    sh("ip", "netns", "add", name)
    ns: NamespaceThread | None = None
    kernel: KernelArp | None = None
    try:
        sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        ns = NamespaceThread(name)
        index = ns.run(lambda: __import__("socket").if_nametoindex("eth0"))
        dev_mac = bytes.fromhex(sh("ip", "netns", "exec", name, "cat", "/sys/class/net/eth0/address")
                                .stdout.strip().replace(":", ""))  # fmt: skip
        kernel = kernel_or_skip()
        try:
            ns.run(lambda: kernel.attach("eth0", index, OURS))
        except ebpf.Unavailable as exc:
            pytest.skip(f"no tcx links here: {exc}")
        yield Rig(ns, kernel, index, dev_mac)
    finally:
        if kernel is not None:
            kernel.close()
        if ns is not None:
            ns.stop()
        sh("ip", "netns", "del", name, check=False)


def request(target: bytes, *, sender_ip: bytes = CLIENT_IP, sender_mac: bytes = CLIENT, eth_src: bytes = CLIENT,
            eth_dst: bytes = frames.BROADCAST_MAC, op: int = frames.ARP_REQUEST) -> bytes:  # fmt: skip
    return frames.build_arp(op=op, eth_src=eth_src, eth_dst=eth_dst, sender_mac=sender_mac, sender_ip=sender_ip,
                            target_mac=frames.ZERO_MAC, target_ip=target)  # fmt: skip


def solicit(target: bytes, *, src_ip: bytes = CLIENT6, eth_src: bytes = CLIENT, eth_dst: bytes | None = None) -> bytes:
    frame = frames.build_ns(eth_src=eth_src, src_ip=src_ip, target=target)
    return frame if eth_dst is None else eth_dst + frame[6:]


def with_byte(frame: bytes, at: int, value: int) -> bytes:
    return frame[:at] + bytes([value]) + frame[at + 1 :]


def test_a_solicitation_for_an_owned_ipv6_gets_the_responders_exact_advertisement(rig: Rig) -> None:
    relayed = solicit(OWNED6)[:6] + bytes.fromhex("0200000000c2") + solicit(OWNED6)[12:]  # answered to the option's MAC
    for frame in (solicit(OWNED6), solicit(OWNED6, eth_dst=rig.dev_mac), relayed,
                  with_byte(solicit(OWNED6), 15, 0x12)):  # a flow label (not in the checksum)  # fmt: skip
        expected = rig.user_answer(frame)
        assert expected is not None
        answered = rig.kernel_answer(frame)
        assert answered == expected
        parsed = frames.parse_ndp(answered)
        assert parsed is not None and parsed.type == frames.NDP_NA and parsed.link_addr == OURS
        assert parsed.eth_dst == CLIENT and parsed.dst_ip == CLIENT6 and parsed.target == OWNED6


@pytest.mark.parametrize(
    "case",
    ["not owned", "watched (yielded)", "owned on another interface", "from our own MAC", "bad checksum",
     "an advertisement", "hop limit 254", "to another host's MAC"],
)  # fmt: skip
def test_what_the_responder_does_not_answer_in_ipv6_is_handed_on(rig: Rig, case: str) -> None:
    frame = {
        "not owned": solicit(NOT_OWNED6),
        "watched (yielded)": solicit(WATCHED6),
        "owned on another interface": solicit(ELSEWHERE6),
        "from our own MAC": solicit(OWNED6, eth_src=OURS),
        "bad checksum": with_byte(solicit(OWNED6), 57, solicit(OWNED6)[57] ^ 1),
        "an advertisement": frames.unsolicited_na(CLIENT, OWNED6),  # a duplicate: the responder reports it
        "hop limit 254": with_byte(solicit(OWNED6), 21, 254),
        "to another host's MAC": solicit(OWNED6, eth_dst=bytes.fromhex("0200000000ee")),
    }[case]
    assert rig.kernel_answer(frame) is None
    if rig.reaches_the_host(frame):
        assert rig.user_answer(frame) is None


@pytest.mark.parametrize("case", ["duplicate address detection (from ::)", "padded", "no source address option"])
def test_solicitations_the_program_leaves_to_the_responder(rig: Rig, case: str) -> None:
    # Answerable, but not by rewriting the frame in place (another destination, another length).
    base = solicit(OWNED6)
    message = b"\x87\x00\x00\x00" + base[58:78]  # the solicitation without its option
    checksum = struct.pack("!H", frames.icmpv6_checksum(CLIENT6, base[38:54], message))
    no_option = base[:18] + b"\x00\x18" + base[20:54] + message[:2] + checksum + message[4:]
    frame = {
        "duplicate address detection (from ::)": frames.ns_probe(CLIENT, OWNED6),
        "padded": base + bytes(4),
        "no source address option": no_option,
    }[case]
    assert rig.kernel_answer(frame) is None
    assert rig.user_answer(frame) is not None


def test_an_owned_ip_is_answered_with_the_responders_exact_reply(rig: Rig) -> None:
    for frame in (request(OWNED), request(ALSO_OWNED), frames.arp_probe(CLIENT, OWNED),
                  request(OWNED, eth_src=bytes.fromhex("0200000000c2")),  # relayed: the reply goes to the ARP sender
                  request(OWNED) + bytes(18)):  # padded to 60 bytes, as on a real wire  # fmt: skip
        expected = rig.user_answer(frame)
        assert expected is not None
        answered = rig.kernel_answer(frame)
        assert answered is not None and answered[: len(expected)] == expected
        parsed = frames.parse_arp(answered)
        assert parsed is not None and parsed.op == frames.ARP_REPLY and parsed.sender_mac == OURS


@pytest.mark.parametrize(
    "case",
    [
        "not owned", "watched (yielded)", "owned on another interface", "gratuitous request",
        "sender claims an owned IP", "from our own MAC", "from another of our MACs", "a reply", "truncated",
        "wrong lengths", "to another host's MAC",
    ],
)  # fmt: skip
def test_what_the_responder_does_not_answer_is_handed_on(rig: Rig, case: str) -> None:
    frame = {
        "not owned": request(NOT_OWNED),
        "watched (yielded)": request(WATCHED),
        "owned on another interface": request(ELSEWHERE),
        "gratuitous request": request(OWNED, sender_ip=OWNED),
        "sender claims an owned IP": request(ALSO_OWNED, sender_ip=OWNED),
        "from our own MAC": request(OWNED, eth_src=OURS, sender_mac=OURS),
        "from another of our MACs": request(OWNED, eth_src=ALSO_OURS, sender_mac=ALSO_OURS),
        "a reply": request(OWNED, op=frames.ARP_REPLY),
        "truncated": request(OWNED)[:41],
        "wrong lengths": request(OWNED)[:18] + b"\x06\x10" + request(OWNED)[20:],
        "to another host's MAC": request(OWNED, eth_dst=bytes.fromhex("0200000000ee")),
    }[case]
    assert rig.kernel_answer(frame) is None
    if rig.reaches_the_host(frame):
        assert rig.user_answer(frame) is None


def test_a_withdrawn_ip_is_not_answered_once_sync_returns(rig: Rig) -> None:
    assert rig.kernel_answer(request(ALSO_OWNED)) is not None
    owned = {k: v for k, v in rig.owned.items() if k != ALSO_OWNED}
    rig.sync(owned, rig.watched)
    try:
        assert rig.kernel_answer(request(ALSO_OWNED)) is None
        assert rig.kernel_answer(request(OWNED)) is not None
    finally:
        rig.sync(rig.owned, rig.watched)


def test_a_withdrawn_ipv6_is_not_answered_once_sync_returns(rig: Rig) -> None:
    assert rig.kernel_answer(solicit(OWNED6)) is not None
    rig.sync(rig.owned, rig.watched, owned6={})
    try:
        assert rig.kernel_answer(solicit(OWNED6)) is None
        assert rig.kernel_answer(request(OWNED)) is not None
    finally:
        rig.sync(rig.owned, rig.watched)
    assert rig.kernel_answer(solicit(OWNED6)) is not None


def test_nothing_is_answered_once_the_lease_lapses(rig: Rig) -> None:
    rig.kernel.renew(seconds=-1.0)
    try:
        assert rig.kernel_answer(request(OWNED)) is None
        assert rig.kernel_answer(solicit(OWNED6)) is None
    finally:
        rig.kernel.renew(seconds=RIG_LEASE)
    assert rig.kernel_answer(request(OWNED)) is not None
    assert rig.kernel_answer(solicit(OWNED6)) is not None


def test_counts_are_per_ip_and_survive_the_entry_going_and_coming_back(rig: Rig) -> None:
    rig.kernel.refresh_counts(0.0, force=True)
    before_req, before_resp = rig.kernel.requests.get(OWNED, 0), rig.kernel.responses.get(OWNED, 0)
    for _ in range(5):
        assert rig.kernel_answer(request(OWNED)) is not None
    assert rig.kernel_answer(request(NOT_OWNED)) is None  # counted nowhere
    rig.sync({k: v for k, v in rig.owned.items() if k != OWNED}, rig.watched)  # folded before the delete
    rig.sync(rig.owned, rig.watched)
    for _ in range(3):
        assert rig.kernel_answer(request(OWNED)) is not None
    rig.kernel.refresh_counts(0.0, force=True)
    assert rig.kernel.requests[OWNED] - before_req == 8
    assert rig.kernel.responses[OWNED] - before_resp == 8
    assert NOT_OWNED not in rig.kernel.requests


def test_ipv6_counts_are_per_ip_too(rig: Rig) -> None:
    rig.kernel.refresh_counts(0.0, force=True)
    before = rig.kernel.requests.get(OWNED6, 0), rig.kernel.responses.get(OWNED6, 0)
    for _ in range(4):
        assert rig.kernel_answer(solicit(OWNED6)) is not None
    assert rig.kernel_answer(solicit(NOT_OWNED6)) is None
    rig.kernel.refresh_counts(0.0, force=True)
    assert (rig.kernel.requests[OWNED6] - before[0], rig.kernel.responses[OWNED6] - before[1]) == (4, 4)
    assert NOT_OWNED6 not in rig.kernel.requests


class NoTcx:
    """A KernelArp on a host without tcx links: loading worked, attaching cannot."""

    closed = False
    requests: dict[bytes, int] = {}
    responses: dict[bytes, int] = {}

    def attach(self, name: str, index: int, mac: bytes) -> None:
        raise ebpf.Unavailable(22, "attaching at tcx ingress: this kernel has no tcx links (Linux 6.6 or later)")

    def close(self) -> None:
        self.closed = True


def test_a_host_that_cannot_attach_answers_from_user_space_and_says_why(rig: Rig) -> None:
    fake = NoTcx()
    responder = Responder(kernel=fake)  # type: ignore[arg-type]
    try:
        rig.ns.run(lambda: responder.open("eth0", rig.index, OURS))
        assert list(responder.ports) == ["eth0"]  # the sockets answer there
        assert fake.closed
        assert responder.kernel_status() == {
            "interfaces": [], "entries": 0,
            "unavailable": "attaching at tcx ingress: this kernel has no tcx links (Linux 6.6 or later)",
        }  # fmt: skip
        responder.set_owned({OWNED: frozenset({"eth0"})}, {})  # no kernel left to sync: no error
    finally:
        responder.stop()


def test_a_full_map_leaves_the_rest_to_the_responder(rig: Rig) -> None:
    small = kernel_or_skip(max_entries=2)
    try:
        rig.ns.run(lambda: small.attach("eth0", rig.index, OURS))
        many = {ipaddress.ip_address(f"10.0.11.{i}").packed: frozenset({"eth0"}) for i in range(1, 5)}
        rig.ns.run(lambda: small.sync(many, {}, {"eth0": rig.index}, {OURS}))
        assert small.entries == 2
        placed = {key[:4] for key, _ in small._map.items()}
        # Two withdrawn make room: the two the map refused go in, no other change needed.
        left = {ip: names for ip, names in many.items() if ip not in placed}
        rig.ns.run(lambda: small.sync(left, {}, {"eth0": rig.index}, {OURS}))
        assert {key[:4] for key, _ in small._map.items()} == set(left) and small.entries == 2
    finally:
        small.close()
    assert rig.kernel_answer(request(OWNED)) is not None  # the rig's own program is untouched


# -- fuzzing: any frame, the same decision as the responder ------------------

VALID = [request(OWNED), request(NOT_OWNED), request(WATCHED), frames.arp_probe(CLIENT, OWNED),
         request(OWNED, op=frames.ARP_REPLY), request(ALSO_OWNED, sender_ip=OWNED),
         solicit(OWNED6), solicit(OWNED6), solicit(NOT_OWNED6), solicit(WATCHED6), frames.ns_probe(CLIENT, OWNED6),
         frames.unsolicited_na(CLIENT, OWNED6)]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(frame) - 1))
        if draw(st.booleans()):
            frame[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        else:
            frame[at] = draw(st.integers(min_value=0, max_value=255))
    if draw(st.booleans()):
        del frame[draw(st.integers(min_value=14, max_value=len(frame))):]
    return bytes(frame)


@settings(max_examples=int(os.environ.get("METALLOID_PROPERTY_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(frame=mutated())
# Found by this test: ARP frames cut to the Ethernet header with an IP ethertype.
@example(frame=b"\x00\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\xc1\x08\x00")
@example(frame=b"\xff" * 6 + CLIENT + b"\x86\xdd" + bytes(28))
def test_any_frame_gets_the_responders_decision(rig: Rig, frame: bytes) -> None:
    answered = rig.kernel_answer(frame)
    if not rig.reaches_the_host(frame):
        assert answered is None
        return
    expected = rig.user_answer(frame)
    if answered is None:
        # Handed on: the responder answers it itself, or not at all, never wrongly.
        return
    assert expected is not None, f"the kernel answered a frame the responder would not: {frame.hex()}"
    assert answered[: len(expected)] == expected


@pytest.mark.parametrize("family", ["arp", "ndp"])
def test_the_kernel_hands_on_only_what_the_responder_would_answer_the_same(rig: Rig, family: str) -> None:
    """The other direction of the fuzz property, on every single-byte change of a request for an owned IP."""
    base = request(OWNED) if family == "arp" else solicit(OWNED6)
    disagreements = []
    for at in range(len(base)):
        for value in (0x00, 0x01, 0xFF, base[at] ^ 0x80):
            frame = base[:at] + bytes([value]) + base[at + 1 :]
            if not rig.reaches_the_host(frame):
                continue
            expected, answered = rig.user_answer(frame), rig.kernel_answer(frame)
            if (expected is None) != (answered is None):
                disagreements.append((at, value, expected is not None))
    assert disagreements == [], sorted({(at, exp) for at, _, exp in disagreements})


def test_without_cap_bpf_the_reason_is_said_and_the_responder_answers_alone() -> None:
    code = ("from plugins.layer2.kernel_arp import for_responder; import json; "
            "print(json.dumps({k: str(v) if k == 'kernel' else v for k, v in for_responder().items()}))")  # fmt: skip
    done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-c",
                           code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    got = json.loads(done.stdout)
    assert got == {"kernel": "None", "kernel_unavailable": got["kernel_unavailable"]}
    assert got["kernel_unavailable"].startswith("creating BPF map metalloid_arp needs CAP_BPF"), got


# -- the lab: the real announcer, a client kernel resolving ---------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    kernel_or_skip().close()  # a refused program fails here, before the harness hides it as a reason
    with running("ka") as (lab, ready):
        if ready["arp_in_kernel"]["unavailable"]:
            pytest.skip(f"no in-kernel ARP here: {ready['arp_in_kernel']['unavailable']}")
        yield lab


def arping(lab: Lab, ip: str) -> bool:
    """Whether the node's MAC answered."""
    code, out = lab.arping(ip)
    return code == 0 and lab.node_mac() in out.lower()


def test_the_kernel_answers_while_the_announcer_is_stopped_until_the_lease_lapses(lab: Lab) -> None:
    status = lab.announce("web", "10.99.0.10", "fd00:99::10")
    assert status["arp_in_kernel"]["interfaces"] == ["eth0"] and status["arp_in_kernel"]["entries"] == 2
    assert lab.harness is not None
    lab.command(op="kernel_lease", seconds=30, hold=True)  # long enough for arping to start
    os.kill(lab.harness.pid, signal.SIGSTOP)
    try:
        # Nobody in user space can answer: the reply is the kernel's.
        assert arping(lab, "10.99.0.10")
        assert resolves6(lab, "fd00:99::10")
    finally:
        os.kill(lab.harness.pid, signal.SIGCONT)
    # Back to the short lease, renewed every tick; stopped again, it lapses.
    lab.command(op="kernel_lease", seconds=LEASE_SECONDS, hold=False)
    lab.status()
    os.kill(lab.harness.pid, signal.SIGSTOP)
    try:
        time.sleep(LEASE_SECONDS + 0.1)
        assert not arping(lab, "10.99.0.10")
        assert not resolves6(lab, "fd00:99::10")
    finally:
        os.kill(lab.harness.pid, signal.SIGCONT)
    assert arping(lab, "10.99.0.10")
    assert resolves6(lab, "fd00:99::10")
    metrics = lab.status()["metrics"]
    assert metrics["metallb_layer2_requests_received{ip=10.99.0.10}"] >= 2
    assert metrics["metallb_layer2_requests_received{ip=fd00:99::10}"] >= 2


def resolves6(lab: Lab, ip: str) -> bool:
    """Whether the client's kernel resolves `ip` (a Neighbor Solicitation) to the node's MAC."""
    lab.in_client("ip", "-6", "neigh", "flush", "dev", "eth0")
    lab.in_client("ping", "-6", "-c", "1", "-W", "1", ip)
    return lab.neighbour(ip) == lab.node_mac()


def test_off_in_the_environment_answers_from_user_space(lab: Lab) -> None:
    lab.stop_harness()
    try:
        ready = lab.start_harness(env={"METALLOID_LAYER2_KERNEL_ARP": "off"})
        assert ready["arp_in_kernel"]["interfaces"] == []
        assert "METALLOID_LAYER2_KERNEL_ARP=off" in ready["arp_in_kernel"]["unavailable"]
        lab.announce("web", "10.99.0.10")
        assert arping(lab, "10.99.0.10")
    finally:
        lab.stop_harness()
        lab.start_harness()


def test_a_killed_announcer_answers_nothing_however_long_its_lease(lab: Lab) -> None:
    lab.announce("web", "10.99.0.10")
    assert arping(lab, "10.99.0.10")
    lab.command(op="kernel_lease", seconds=600, hold=True)
    assert lab.harness is not None
    os.kill(lab.harness.pid, signal.SIGKILL)
    lab.harness.wait(timeout=5)
    lab.harness = None
    try:
        # The lease would let the program answer for ten more minutes: only the
        # tcx link closing with the process ends it.
        assert not arping(lab, "10.99.0.10")
        assert lab.arping("10.99.0.2")[0] == 0  # the node's own address: the kernel's answer
    finally:
        lab.start_harness()
