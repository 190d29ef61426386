"""Membership workers as real processes on loopback: detection, LEAVING, forgery, replay.

Each node binds its own 127.0.0.x address and its own port (the per-node
`ports` override), talks real UDP, and is stopped by its PID.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from supervisor.allocating.results import AllocationResult, Assignment
from supervisor.config.model import Config, MembershipSettings, Node, ServiceKey, Settings
from supervisor.membership.codec import Heartbeat, PacketType, decode, encode
from supervisor.membership.worker import KeyFileError, MembershipWorkerSettings, read_key_file, run
from supervisor.messages import (
    AllocationDone,
    ConfigLoaded,
    Control,
    MembersChanged,
    MetricUpdate,
    WorkerFailed,
    WorkerHeartbeat,
)
from tests.runtime_helpers import free_port

CTX = multiprocessing.get_context("spawn")
KEY = b"test-membership-key"
BASE = 30 + os.getpid() % 200  # 127.0.0.BASE.. : distinct per test run


@dataclass
class Cluster:
    names: tuple[str, ...]
    addresses: dict[str, str]
    ports: dict[str, int]
    interval: float = 0.1
    dead_after: float = 0.35

    def config(self) -> Config:
        nodes = tuple(Node(name=n, addresses=(ipaddress.IPv4Address(self.addresses[n]),)) for n in self.names)
        ms = MembershipSettings(interval_seconds=self.interval, dead_after_seconds=self.dead_after)
        return Config(nodes=nodes, settings=Settings(membership=ms))


def make_cluster(names: tuple[str, ...], **kw: float) -> Cluster:
    addresses = {n: f"127.0.0.{BASE + i}" for i, n in enumerate(names)}
    ports = {n: free_port(a, socket.SOCK_DGRAM) for n, a in addresses.items()}
    return Cluster(names=names, addresses=addresses, ports=ports, **kw)


@dataclass
class Worker:
    name: str
    proc: Any
    inbox: Any
    outbox: Any
    seen: list[object] = field(default_factory=list)

    # Generous waits: they only bound how long a failure takes to show. On a loaded 2-core machine a
    # spawned worker's start (imports, first config) alone has taken several seconds.
    def wait_for(self, pred: Callable[[object], bool], timeout: float = 15.0, *, past: bool = False) -> object:
        """The first message that satisfies `pred` (fails after `timeout`).

        Only messages that arrive from now on count, unless `past`: then one
        already received counts too.
        """
        if past:
            for msg in self.seen:
                if pred(msg):
                    return msg
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no matching message within {timeout}s; last: {self.seen[-5:]}")
            try:
                msg = self.outbox.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(msg)
            if pred(msg):
                return msg

    def wait_members(self, pred: Callable[[MembersChanged], bool], timeout: float = 15.0) -> MembersChanged:
        msg = self.wait_for(lambda m: isinstance(m, MembersChanged) and pred(m), timeout)
        assert isinstance(msg, MembersChanged)
        return msg

    def rejected(self, reason: str, timeout: float = 15.0) -> MetricUpdate:
        msg = self.wait_for(
            lambda m: (
                isinstance(m, MetricUpdate)
                and m.name == "metalloid_heartbeats_rejected_total"
                and m.labels == (("reason", reason),)
            ),
            timeout,
        )
        assert isinstance(msg, MetricUpdate)
        return msg


def heard_all(m: MembersChanged) -> bool:
    return all(i.alive and i.last_heard_seconds is not None for i in m.members)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(cluster: Cluster, name: str, key: bytes | None = KEY, **kw: Any) -> Worker:
        settings = MembershipWorkerSettings(
            node_name=name, key=key, ports=tuple(cluster.ports.items()), report_every_seconds=0.2, **kw
        )
        inbox, outbox = CTX.Queue(), CTX.Queue()
        proc = CTX.Process(target=run, args=(settings, inbox, outbox), name=f"membership-{name}", daemon=True)
        proc.start()
        worker = Worker(name=name, proc=proc, inbox=inbox, outbox=outbox)
        started.append(worker)
        inbox.put(ConfigLoaded(generation=1, config=cluster.config(), origin="test"))
        return worker

    yield start
    for w in started:
        if w.proc.is_alive():
            os.kill(w.proc.pid, signal.SIGKILL)
        w.proc.join(5)


def test_killed_node_is_declared_dead_within_the_deadline(spawn: Callable[..., Worker]) -> None:
    cluster = make_cluster(("a", "b", "c"))
    a, b, c = (spawn(cluster, n) for n in cluster.names)
    for w in (a, b):
        m = w.wait_members(heard_all)
        assert m.alive == {"a", "b", "c"}
    os.kill(c.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    m = a.wait_members(lambda m: "c" not in m.alive, timeout=3.0)
    elapsed = time.monotonic() - killed
    assert m.alive == {"a", "b"}
    assert elapsed < 1.5, f"detection took {elapsed:.3f}s"
    detection = a.wait_for(
        lambda m: isinstance(m, MetricUpdate) and m.name == "metalloid_failover_detection_seconds", past=True
    )
    assert isinstance(detection, MetricUpdate)
    # Measured from c's last heartbeat: the deadline, plus at most about one loop turn.
    assert 0.35 <= detection.value < 0.35 + 0.2
    b.wait_members(lambda m: m.alive == {"a", "b"}, timeout=3.0)


def test_stop_sends_leaving_and_peers_react_at_once(spawn: Callable[..., Worker]) -> None:
    # A long deadline, so that only LEAVING can explain a death well before it.
    cluster = make_cluster(("a", "b"), dead_after=30.0)
    a, b = (spawn(cluster, n) for n in cluster.names)
    a.wait_members(heard_all)
    b.wait_members(heard_all)
    b.inbox.put(Control.STOP)
    # Within half the deadline: only LEAVING explains it.
    a.wait_members(lambda m: m.alive == {"a"}, timeout=15.0)
    b.proc.join(5)
    assert b.proc.exitcode == 0


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_restarted_node_is_heard_again_through_the_kernel_filter(spawn: Callable[..., Worker], how: str) -> None:
    """After a restart both sides echo incarnations the other no longer has.

    Before, b was proven alive at a, so a's socket filter admitted only
    packets echoing a's incarnation; the new b has heard nobody and echoes 0,
    and a echoes b's previous incarnation. b leaving (LEAVING) or dying (the
    deadline) must reopen the filter for it, and the new b must read a's
    stale echoes, or the two would never hear each other again.
    """
    cluster = make_cluster(("a", "b"))
    a, b = (spawn(cluster, n) for n in cluster.names)
    a.wait_members(heard_all)
    b.wait_members(heard_all)
    if how == "stop":
        b.inbox.put(Control.STOP)
    else:
        os.kill(b.proc.pid, signal.SIGKILL)
    b.proc.join(5)
    a.wait_members(lambda m: m.alive == {"a"})
    b2 = spawn(cluster, "b")
    # Heard (not only presumed alive during b2's startup grace) on both sides.
    b2.wait_members(heard_all)
    a.wait_members(lambda m: m.alive == {"a", "b"} and heard_all(m))


def test_forged_and_replayed_packets_are_rejected(spawn: Callable[..., Worker]) -> None:
    # "d" is played by the test: a real socket that sends and receives heartbeats.
    cluster = make_cluster(("a", "d"), dead_after=5.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as d:
        d.bind((cluster.addresses["d"], cluster.ports["d"]))
        d.settimeout(5.0)
        a = spawn(cluster, "a")
        target = (cluster.addresses["a"], cluster.ports["a"])

        # What a sends to d is authenticated and addressed to d.
        data, _ = d.recvfrom(4096)
        got = decode(data, key=KEY, receiver="d", known={"a"})
        assert isinstance(got, Heartbeat) and got.sender == "a" and got.type is PacketType.HEARTBEAT

        def from_d(seq: int, key: bytes | None, echo: int = got.incarnation) -> bytes:
            hb = Heartbeat(
                type=PacketType.HEARTBEAT, sender="d", receiver="a", incarnation=5, seq=seq, sent_at_ns=time.time_ns(),
                echo_incarnation=echo,
            )
            return encode(hb, key)

        d.sendto(from_d(1, None), target)  # forged: no key, no MAC
        a.rejected("bad_mac")
        d.sendto(from_d(1, b"guessed-key"), target)
        a.rejected("bad_mac")

        genuine = [from_d(seq, KEY) for seq in (1, 2, 3)]
        for packet in genuine:
            d.sendto(packet, target)
        a.wait_members(lambda m: any(i.name == "d" and i.last_heard_seconds is not None for i in m.members))
        d.sendto(genuine[1], target)  # a recorded genuine packet, played again
        a.rejected("replay")
        # d is now proven alive, so the kernel filter refuses what a must not
        # read: garbage, and a genuine fresh packet echoing a previous run of a
        # (no proof of life); the detector's stale_echo is tested without the filter.
        d.sendto(b"\x00garbage", target)
        d.sendto(from_d(10, KEY, echo=got.incarnation - 1), target)
        assert a.rejected("kernel").value == 2


def test_an_echoing_flood_claiming_a_live_peer_costs_no_hmac_past_the_allowance(spawn: Callable[..., Worker]) -> None:
    """The attacker sees the heartbeats: it forges b's address, echoes a's incarnation and uses b's own with
    b's next sequence numbers. a refuses all but 64 a second before the HMAC (bad_token), and b stays alive."""
    cluster = make_cluster(("a", "b"), dead_after=5.0)
    a = spawn(cluster, "a", incarnation=1_765_000_000_000_000_000)
    b_incarnation = 1_765_000_000_000_000_007
    spawn(cluster, "b", incarnation=b_incarnation)
    a.wait_members(heard_all, timeout=20)
    target = (cluster.addresses["a"], cluster.ports["a"])
    forged = [encode(Heartbeat(type=PacketType.HEARTBEAT, sender="b", receiver="a", incarnation=b_incarnation,
                               seq=seq, sent_at_ns=seq, echo_incarnation=1_765_000_000_000_000_000), b"guessed-key")
              for seq in range(1, 401)]
    watched = len(a.seen)
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.bind((cluster.addresses["b"], 0))  # b's address, as a forged source would be
        for _ in range(50):
            for packet in forged:
                attacker.sendto(packet, target)
            time.sleep(0.01)
    flooded = time.monotonic() - started
    counts = {"bad_mac": 0.0, "bad_token": 0.0}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(counts.values()) < 20_000 * 0.9:
        msg = a.wait_for(lambda m: isinstance(m, MetricUpdate) and m.name == "metalloid_heartbeats_rejected_total")
        assert isinstance(msg, MetricUpdate)
        reason = dict(msg.labels)["reason"]
        counts[reason] = counts.get(reason, 0.0) + msg.value
    assert counts["bad_token"] >= 20_000 * 0.9 - counts["bad_mac"] - counts.get("kernel", 0.0)
    assert counts["bad_mac"] <= 64 * (flooded + 3), counts  # the allowance, once a second
    assert all("b" in m.alive for m in a.seen[watched:] if isinstance(m, MembersChanged))


def test_multi_node_config_without_key_refuses_to_start(spawn: Callable[..., Worker]) -> None:
    cluster = make_cluster(("a", "b"))
    a = spawn(cluster, "a", key=None)
    failed = a.wait_for(lambda m: isinstance(m, WorkerFailed))
    assert isinstance(failed, WorkerFailed) and "--membership-key-file" in failed.error
    a.proc.join(5)
    assert a.proc.exitcode == 2


def test_insecure_mode_runs_without_a_key(spawn: Callable[..., Worker]) -> None:
    cluster = make_cluster(("a", "b"))
    a, _b = spawn(cluster, "a", key=None, insecure=True), spawn(cluster, "b", key=None, insecure=True)
    assert a.wait_members(heard_all).alive == {"a", "b"}
    assert a.wait_for(lambda m: isinstance(m, WorkerHeartbeat))


def test_single_node_is_alive_alone(spawn: Callable[..., Worker]) -> None:
    cluster = make_cluster(("a",))
    a = spawn(cluster, "a", key=None)
    m = a.wait_members(lambda m: True)
    assert m.alive == {"a"} and [i.name for i in m.members] == ["a"]


def allocation(ip: str) -> AllocationDone:
    key = ServiceKey(namespace="default", name="web")
    result = AllocationResult(
        assignments={key: Assignment(service=key, ips=(ipaddress.IPv4Address(ip),), pool="lan")}, pending={}, pools=()
    )
    return AllocationDone(generation=1, result=result)


def test_digest_mismatch_names_the_service(spawn: Callable[..., Worker]) -> None:
    cluster = make_cluster(("a", "b"))
    a = spawn(cluster, "a", consistency_grace_seconds=0.5)
    b = spawn(cluster, "b", consistency_grace_seconds=0.5)
    a.inbox.put(allocation("10.0.10.10"))
    b.inbox.put(allocation("10.0.10.11"))
    m = a.wait_members(lambda m: bool(m.digest_mismatch))
    assert m.digest_mismatch == (("b", (ServiceKey(namespace="default", name="web"),)),)
    b.inbox.put(allocation("10.0.10.10"))  # b is fixed: the report clears
    a.wait_members(lambda m: not m.digest_mismatch and all(i.digest == m.members[0].digest for i in m.members))


def test_key_file(tmp_path: Any) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"  0123456789abcdef-secret\n")
    path.chmod(0o600)
    assert read_key_file(path) == b"0123456789abcdef-secret"
    path.write_bytes(b"\n")
    with pytest.raises(ValueError, match="empty"):
        read_key_file(path)
    with pytest.raises(ValueError, match="cannot read"):
        read_key_file(tmp_path / "missing")


def test_a_key_path_that_is_no_regular_file_is_refused_not_waited_on(tmp_path: Any) -> None:
    """A FIFO without a writer would hang the start, /dev/zero would fill the memory: both are refused at once."""
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    with pytest.raises(KeyFileError, match=r"key\.fifo: is a FIFO \(named pipe\), not a regular file"):
        read_key_file(fifo)
    link = tmp_path / "key"
    link.symlink_to("/dev/zero")
    with pytest.raises(KeyFileError, match="is a character device"):
        read_key_file(link)
    big = tmp_path / "big.key"
    big.write_bytes(b"k" * 5000)
    with pytest.raises(KeyFileError, match="over the 4096 bytes limit for a membership key file"):
        read_key_file(big)


def test_a_short_key_is_refused_naming_the_file_and_the_fix(tmp_path: Any) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"0123456789abcde\n")  # 15 bytes
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as err:
        read_key_file(path)
    assert str(path) in str(err.value)
    assert "15 bytes, at least 16" in str(err.value) and "openssl rand" in str(err.value)
    path.write_bytes(b"0123456789abcdef\n")  # 16: the minimum
    assert read_key_file(path) == b"0123456789abcdef"


@pytest.mark.parametrize(("mode", "gid", "warned"), [
    (0o600, None, False),
    (0o640, "own", False),   # root:metalloid 0640, as deploy/standalone installs it
    (0o640, "other", True),  # a group this process is not in
    (0o604, None, True),
    (0o644, "own", True),
])  # fmt: skip
def test_a_key_file_others_can_read_is_warned_about(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, mode: int, gid: str | None, warned: bool
) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"0123456789abcdef0123456789abcdef")
    if gid is not None:
        mine = {os.getegid(), *os.getgroups()}
        target = os.getegid() if gid == "own" else next(g for g in range(1, 70000) if g not in mine)
        if gid == "other" and os.geteuid() != 0:
            pytest.skip("only root can give a file to a group it is not in")
        os.chown(path, -1, target)
    path.chmod(mode)
    with caplog.at_level(logging.WARNING):
        read_key_file(path)
    lines = [r.getMessage() for r in caplog.records if "key_file_readable" in r.getMessage()]
    assert bool(lines) == warned
    if warned:
        assert str(path) in lines[0] and f"chmod 600 {path}" in lines[0]


def test_nobody_else_can_bind_the_heartbeat_port(spawn: Callable[..., Worker]) -> None:
    """No SO_REUSEADDR/SO_REUSEPORT on our socket: a second bind fails, with or without them."""
    cluster = make_cluster(("a", "b"))
    a = spawn(cluster, "a")
    a.wait_for(lambda m: isinstance(m, MembersChanged))
    target = (cluster.addresses["a"], cluster.ports["a"])
    for options in ((), (socket.SO_REUSEADDR,), (socket.SO_REUSEPORT,), (socket.SO_REUSEADDR, socket.SO_REUSEPORT)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
            for option in options:
                thief.setsockopt(socket.SOL_SOCKET, option, 1)
            with pytest.raises(OSError) as err:
                thief.bind(target)
            assert err.value.errno == errno.EADDRINUSE, options
        # Nor on the wildcard address, which would receive what a's address does not claim.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
            for option in options:
                thief.setsockopt(socket.SOL_SOCKET, option, 1)
            with pytest.raises(OSError) as err:
                thief.bind(("0.0.0.0", target[1]))
            assert err.value.errno == errno.EADDRINUSE, options
    assert a.proc.is_alive()


def readiness_config(cluster: Cluster, *, b_ready: bool) -> Config:
    base = cluster.config()
    nodes = tuple(n if n.name != "b" else Node(name="b", addresses=n.addresses, ready=b_ready) for n in base.nodes)
    return Config(nodes=nodes, settings=base.settings)


def test_kubernetes_peer_never_heard_counts_alive_while_its_node_is_ready(spawn: Callable[..., Worker]) -> None:
    # "b" is configured but never sends a heartbeat (its port firewalled).
    cluster = make_cluster(("a", "b"))
    a = spawn(cluster, "a", kubernetes=True)
    a.inbox.put(ConfigLoaded(generation=2, config=readiness_config(cluster, b_ready=True), origin="test"))
    m = a.wait_members(lambda m: any(i.name == "b" and i.basis == "kubernetes-ready" for i in m.members))
    assert m.alive == {"a", "b"}, "a never-heard peer whose Node is Ready must keep the election single-owner"
    b = next(i for i in m.members if i.name == "b")
    assert b.alive and b.last_heard_seconds is None
    assert a.wait_for(
        lambda m: isinstance(m, MetricUpdate) and m.name == "metalloid_membership_isolated" and m.value == 1.0,
        past=True,
    ), "isolation stays loud even with the fallback"
    before = time.monotonic()
    a.inbox.put(ConfigLoaded(generation=3, config=readiness_config(cluster, b_ready=False), origin="test"))
    m = a.wait_members(lambda m: m.alive == {"a"})
    assert m.changed_at is not None and before <= m.changed_at <= time.monotonic()


def test_standalone_peer_never_heard_is_dead_after_the_grace(spawn: Callable[..., Worker]) -> None:
    cluster = make_cluster(("a", "b"))
    a = spawn(cluster, "a")
    m = a.wait_members(lambda m: m.alive == {"a"})
    assert [(i.name, i.basis) for i in m.members] == [("a", "heartbeat"), ("b", "heartbeat")]
    assert m.changed_at is not None  # the grace ended: b died


def test_drops_are_counted_in_memory_and_reported_once_a_second(spawn: Callable[..., Worker]) -> None:
    cluster = make_cluster(("a", "b"), dead_after=5.0)
    a = spawn(cluster, "a")
    a.wait_for(lambda m: isinstance(m, MembersChanged))
    stranger = f"127.0.0.{BASE + 10}"  # no configured node has it
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((stranger, 0))
        for _ in range(300):
            s.sendto(b"ML\x01" + bytes(100), (cluster.addresses["a"], cluster.ports["a"]))
            time.sleep(0.002)  # within the kernel buffer, spread over ~0.6 s
    # The socket filter refuses them in the kernel (never read); the kernel's count is reported.
    reports: list[float] = []
    deadline = time.monotonic() + 6.0
    while sum(reports) < 300 and time.monotonic() < deadline:
        msg = a.rejected("kernel", timeout=max(0.1, deadline - time.monotonic()))
        reports.append(msg.value)
    assert sum(reports) == 300
    assert len(reports) <= 3, f"300 drops took {len(reports)} reports: {reports}"


def test_before_its_first_config_the_worker_sleeps_until_its_next_heartbeat() -> None:
    # `metalloid run` starts membership with the other workers, so it may wait
    # a second or more for its first config; its loop must sleep meanwhile, not
    # wake at once on a report time that only a config sets moving (it spun).
    from supervisor.membership.worker import _Worker

    sent: queue.Queue[object] = queue.Queue()
    worker = _Worker(MembershipWorkerSettings(node_name="n1", key=KEY), sent)  # type: ignore[arg-type]
    try:
        now = time.monotonic()
        worker._tick(now)
        assert isinstance(sent.get_nowait(), WorkerHeartbeat)
        assert worker._wake_at(listening=True) == worker.next_heartbeat > now
        worker._tick(time.monotonic())
        assert sent.empty()  # no heartbeat before it is due, and no report without a config
    finally:
        worker.close()
