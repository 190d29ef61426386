"""A private layer 2 lab built from network namespaces: a bridge, N hosts, nothing else.

Used by `metalloid demo`, the lab tests and the benchmarks. Every host is its
own namespace with one veth `eth0` plugged into a bridge that lives in a
namespace of its own, so nothing is ever created in (or routed to) the
machine's real network namespace: the only addresses touched are the lab's.

Every process started in the lab is tracked by PID and stopped by PID when the
lab is torn down; teardown is idempotent and runs from `with Lab(...)`, an
atexit hook and signal handlers of the caller, so a failing test or a Ctrl-C
leaves no namespace behind.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

CLONE_NEWNET = 0x40000000

# veth peers in the bridge namespace are named p<index>; interface names are
# limited to 15 bytes, so hosts are indexed, not named.
BRIDGE = "br0"


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LabHost:
    """One host of the lab: its namespace and its `eth0` addresses."""

    name: str
    netns: str
    ipv4: ipaddress.IPv4Interface
    ipv6: ipaddress.IPv6Interface
    index: int

    @property
    def ip(self) -> str:
        return str(self.ipv4.ip)


def require_root() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces): run it with sudo"
    if shutil.which("ip") is None:
        return "the lab needs iproute2's `ip` command: apt-get install iproute2"
    return None


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass
class Lab:
    """A bridge plus hosts. `prefix` keeps namespaces of concurrent labs apart."""

    prefix: str
    hosts: Sequence[str]
    subnet_v4: str = "10.0.10.0/24"
    subnet_v6: str = "fd00:10::/64"
    # host name -> host index (address offset); defaults to position + 1
    host_index: dict[str, int] = field(default_factory=dict)
    _hosts: dict[str, LabHost] = field(default_factory=dict, init=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False)
    _created: list[str] = field(default_factory=list, init=False)

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    def host(self, name: str) -> LabHost:
        return self._hosts[name]

    def all_hosts(self) -> list[LabHost]:
        return list(self._hosts.values())

    # -- building ---------------------------------------------------------

    def create(self) -> Lab:
        v4 = ipaddress.IPv4Network(self.subnet_v4)
        v6 = ipaddress.IPv6Network(self.subnet_v6)
        self._add_netns(self.bridge_ns)
        self._ns(self.bridge_ns, "ip", "link", "add", BRIDGE, "type", "bridge")
        # No STP, no forwarding delay: a port forwards the moment it is up,
        # so a link coming back is usable at once (as on a typical switch port
        # with portfast).
        self._ns(self.bridge_ns, "ip", "link", "set", BRIDGE, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        self._ns(self.bridge_ns, "ip", "link", "set", BRIDGE, "up")
        for position, name in enumerate(self.hosts):
            index = self.host_index.get(name, position + 1)
            host = LabHost(
                name=name,
                netns=f"{self.prefix}-{name}",
                ipv4=ipaddress.IPv4Interface(f"{v4[index]}/{v4.prefixlen}"),
                ipv6=ipaddress.IPv6Interface(f"{v6[index]}/{v6.prefixlen}"),
                index=index,
            )
            self._add_host(host)
            self._hosts[name] = host
        return self

    def _add_netns(self, name: str) -> None:
        _run(["ip", "netns", "del", name], check=False)  # a crashed earlier run's leftover
        _run(["ip", "netns", "add", name])
        self._created.append(name)
        self._ns(name, "ip", "link", "set", "lo", "up")

    def _add_host(self, host: LabHost) -> None:
        self._add_netns(host.netns)
        peer = f"p{host.index}"
        _run(["ip", "link", "add", "eth0", "netns", host.netns, "type", "veth", "peer", "name", peer,
              "netns", self.bridge_ns])
        self._ns(self.bridge_ns, "ip", "link", "set", peer, "master", BRIDGE)
        self._ns(self.bridge_ns, "ip", "link", "set", peer, "up")
        # Optimistic DAD: the lab's IPv6 addresses are unique by construction,
        # and waiting ~1 s for DAD would slow every test for nothing.
        self._ns(host.netns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
        self._ns(host.netns, "ip", "addr", "add", str(host.ipv4), "dev", "eth0")
        self._ns(host.netns, "ip", "addr", "add", str(host.ipv6), "dev", "eth0", "nodad")
        self._ns(host.netns, "ip", "link", "set", "eth0", "up")

    # -- using ------------------------------------------------------------

    def _ns(self, netns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", netns, *argv], check=check)

    def run(self, host: str, *argv: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host's namespace and wait for it."""
        return _run(["ip", "netns", "exec", self._hosts[host].netns, *argv], check=check, timeout=timeout)

    def spawn(
        self,
        host: str,
        *argv: str,
        stdout: int | None = subprocess.DEVNULL,
        stderr: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process in a host's namespace; the lab stops it at teardown.

        `ip netns exec` execs the command in place, so the PID returned is the
        command's own: signals reach it directly. It leads a new session so
        that its whole process tree can be stopped by group (by PID, never by name).
        """
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self._hosts[host].netns, *argv],
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def running(self) -> list[subprocess.Popen[bytes]]:
        """The processes this lab started that are still alive."""
        return [p for p in self._procs if p.poll() is None]

    def bridge_port(self, host: str) -> str:
        """The name of `host`'s port on the bridge (in `bridge_ns`): the far end of its cable."""
        return f"p{self._hosts[host].index}"

    def link(self, host: str, up: bool) -> None:
        """Cut or restore a host's cable (its bridge port), as unplugging would."""
        self._ns(self.bridge_ns, "ip", "link", "set", self.bridge_port(host), "up" if up else "down")

    def mac(self, host: str) -> str:
        out = self.run(host, "cat", "/sys/class/net/eth0/address").stdout.strip()
        return out.lower()

    def neighbour(self, host: str, ip: str) -> tuple[str | None, str | None]:
        """(MAC, state) of `ip` in `host`'s kernel neighbour table, or (None, None)."""
        out = self.run(host, "ip", "neigh", "show", "to", ip, "dev", "eth0").stdout.split()
        mac = out[out.index("lladdr") + 1].lower() if "lladdr" in out else None
        return mac, (out[-1] if out else None)

    def flush_neighbours(self, host: str) -> None:
        self.run(host, "ip", "neigh", "flush", "dev", "eth0")

    # -- tearing down -----------------------------------------------------

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Stop one process we started (by PID), escalating to SIGKILL."""
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        return proc.returncode

    def destroy(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                # The whole session (the process and any workers it spawned),
                # addressed by the leader's PID.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("lab.process_stuck pid=%s", proc.pid)
        self._procs.clear()
        for name in reversed(self._created):
            _run(["ip", "netns", "del", name], check=False)
        self._created.clear()
        # Deleting a namespace is asynchronous for its links; wait until gone
        # so a following lab with the same prefix starts clean.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(n.startswith(self.prefix + "-") for n in list_netns()):
            time.sleep(0.05)

    def __enter__(self) -> Lab:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()


def list_netns() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace `name` (setns(2) moves one thread, not the process).

    In a single-threaded process that is the whole process: its sockets,
    HTTP to its loopback, and the children it starts then live there. A
    thread of its own keeps the rest of a process where it was (a test
    attaching to an interface of its own namespace).
    """
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


class NamespaceThread:
    """A thread inside network namespace `name` that runs the calls handed to it.

    What a call makes belongs to that namespace (sockets, tcx links; its
    ifindexes are the ones it sees) while the rest of the process stays where
    it is. Exceptions, a failed setns(2) included, are raised in the caller.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name=f"netns-{name}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            enter_netns(self.name)  # this thread only
            entered: OSError | None = None
        except OSError as exc:
            entered = exc
        while (item := self._calls.get()) is not None:
            call, reply = item
            if entered is not None:
                reply.put((False, entered))
                continue
            try:
                reply.put((True, call()))
            except BaseException as exc:  # handed back to the caller's thread
                reply.put((False, exc))

    def run(self, call: Callable[[], T]) -> T:
        reply: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._calls.put((call, reply))
        ok, value = reply.get(timeout=30)
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._calls.put(None)
        self._thread.join(timeout=5)
