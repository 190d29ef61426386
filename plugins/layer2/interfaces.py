"""Which interfaces layer 2 answers on, and watching them change (netlink).

Suitability is MetalLB's: broadcast-capable, ARP-capable, not loopback, not
enslaved to a bond or bridge (the master answers), and not matching the
interface exclude list. The list comes from, first found:
1. `METALLOID_LAYER2_EXCLUDE` (comma-separated regular expressions, may be
   empty): an override for one host, e.g. a lab whose uplinks are `veth*`;
2. the standalone config's `Settings.spec.announcedInterfacesToExclude`;
3. MetalLB's `metallb-excludel2` ConfigMap, mounted where MetalLB mounts it
   (`/etc/metallb/excludel2.yaml`, key `announcedInterfacesToExclude`);
4. MetalLB's default list (container and overlay plumbing: docker, veth,
   cali, cni, lxc...), where an answer would only confuse.
An interface an L2Advertisement names explicitly bypasses the exclude list:
the operator asked for it (MetalLB would still skip it: see
docs/migrating-from-metallb.md).
Whether a link is up is not part of suitability: sockets stay open on
a link that is down, so it answers the moment it comes back.

`LinkWatcher` follows RTM_NEWLINK/DELLINK/NEWADDR/DELADDR in its own thread
(a plain netlink socket as the wake-up, a fresh dump socket per snapshot made
in that thread, `rtnetlink.py`) and publishes each fresh snapshot of the links
as an immutable tuple that the announcer picks up on its tick.
"""

from __future__ import annotations

import logging
import os
import re
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

EXCLUDE_ENV = "METALLOID_LAYER2_EXCLUDE"
# Where MetalLB's speaker DaemonSet mounts the `metallb-excludel2` ConfigMap, and its key.
EXCLUDE_FILE = "/etc/metallb/excludel2.yaml"
EXCLUDE_KEY = "announcedInterfacesToExclude"
# MetalLB's list, as its manifests and Helm chart ship the ConfigMap.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    r"^docker.*", r"^cbr.*", r"^dummy.*", r"^virbr.*", r"^lxcbr.*", r"^veth.*", r"^lo$", r"^cali.*",
    r"^tunl.*", r"^flannel.*", r"^kube-ipvs.*", r"^cni.*", r"^nodelocaldns.*", r"^lxc.*",
)  # fmt: skip

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
ARPHRD_ETHER = 1

# RTM_NEWLINK/DELLINK/NEWADDR/DELADDR as netlink message types, and the groups carrying them.
_EVENT_TYPES = frozenset({16, 17, 20, 21})  # RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR
_GROUPS = 0x1 | 0x10 | 0x100  # RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
_NLMSGHDR = struct.Struct("=LHHLL")


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    name: str
    index: int
    mac: bytes
    flags: int
    ethernet: bool = True
    enslaved: bool = False

    @property
    def ready(self) -> bool:
        """Administratively up with carrier: frames sent now reach the wire."""
        return self.flags & IFF_UP != 0 and self.flags & IFF_RUNNING != 0


def exclude_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """`METALLOID_LAYER2_EXCLUDE` as a list (may be empty), or None when it is not set."""
    value = (os.environ if environ is None else environ).get(EXCLUDE_ENV)
    if value is None:
        return None
    return tuple(p.strip() for p in value.split(",") if p.strip())


class ExcludeListError(ValueError):
    """The excludel2 file cannot be used; the message names the file, the key and the fix."""


def exclude_from_text(text: str, origin: str) -> tuple[str, ...]:
    """The patterns of an excludel2.yaml document (MetalLB's format); raises ExcludeListError."""
    # deferred: +0.45 MiB PSS in the announcer process, which reads YAML only when the excludel2 ConfigMap
    # is mounted (python -X importtime + /proc PSS, 2026-12-07).
    import yaml

    fix = f"fix the ConfigMap metallb-excludel2 (key excludel2.yaml) that {origin} comes from"
    try:
        body: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExcludeListError(f"{origin}: not valid YAML ({exc}); {fix}") from None
    if body is None:
        return ()
    if not isinstance(body, dict):
        raise ExcludeListError(f"{origin}: expected a mapping with {EXCLUDE_KEY}; {fix}")
    patterns = body.get(EXCLUDE_KEY) or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ExcludeListError(f"{origin}: {EXCLUDE_KEY} must be a list of regular expressions; {fix}")
    for number, pattern in enumerate(patterns):
        problem = pattern_problem(pattern)
        if problem:
            raise ExcludeListError(f"{origin}: {EXCLUDE_KEY}[{number}]: {problem}; {fix}")
    return tuple(patterns)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is no usable regular expression, or None."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression ({exc})"
    return None


def exclude_from_file(path: str = EXCLUDE_FILE) -> tuple[str, ...] | None:
    """The mounted excludel2 ConfigMap's list, or None when it is not mounted (MetalLB: no file, no list)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    return exclude_from_text(text, path)


def exclude_list(
    *, env: tuple[str, ...] | None, settings: tuple[str, ...] | None, mounted: tuple[str, ...] | None
) -> tuple[str, ...]:
    """The list in force: the environment override, the config's Settings, the ConfigMap, MetalLB's default."""
    for found in (env, settings, mounted):
        if found is not None:
            return found
    return DEFAULT_EXCLUDE


def unsuitable(link: Link, *, exclude: Iterable[str], explicit: bool = False) -> str | None:
    """Why layer 2 cannot answer on `link`, or None when it can."""
    if link.flags & IFF_LOOPBACK:
        return "loopback"
    if not link.ethernet or len(link.mac) != 6:
        return "not an Ethernet interface"
    if not link.flags & IFF_BROADCAST:
        return "no broadcast (point-to-point)"
    if link.flags & IFF_NOARP:
        return "ARP disabled (NOARP)"
    if link.enslaved:
        return "enslaved to a bond or bridge (its master answers)"
    if not explicit:
        for pattern in exclude:
            if re.search(pattern, link.name):
                return f"name matches the exclude list ({pattern})"
    return None


def link_from_message(msg: Any) -> Link | None:
    """A `Link` from a pyroute2 RTM_NEWLINK message; None when it lacks a name or address."""
    name = msg.get("ifname") or msg.get_attr("IFLA_IFNAME")
    address = msg.get_attr("IFLA_ADDRESS")
    if not name or not isinstance(address, str):
        return None
    try:
        mac = bytes(int(part, 16) for part in address.split(":"))
    except ValueError:
        return None
    return Link(
        name=name,
        index=int(msg["index"]),
        mac=mac,
        flags=int(msg["flags"]),
        ethernet=msg.get("ifi_type", ARPHRD_ETHER) == ARPHRD_ETHER,
        enslaved=bool(msg.get_attr("IFLA_MASTER")),
    )


def read_links() -> tuple[Link, ...]:
    """A snapshot of this network namespace's links (one netlink dump)."""
    # deferred: the watcher imports this plugin for its validators and needs no netlink: +0.5 MiB PSS
    # there for rtnetlink itself, more for pyroute2's codec it loads (bench/runtime.py, 2026-12-06).
    from plugins.layer2 import rtnetlink

    links = (link_from_message(m) for m in rtnetlink.dump_links())
    return tuple(sorted((lk for lk in links if lk is not None), key=lambda lk: lk.index))


class LinkWatcher:
    """Publishes a fresh link snapshot after every batch of link/address events."""

    def __init__(self, on_change: Callable[[tuple[Link, ...]], None]) -> None:
        self._on_change = on_change
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="layer2-links", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with _event_socket() as events:
                    # Events between the start() snapshot and bind() would be
                    # lost without this first dump.
                    self._on_change(read_links())
                    self._follow(events)
            except Exception:
                log.exception("layer2.links.watch_failed")
                self._stopping.wait(1.0)

    def _follow(self, events: socket.socket) -> None:
        # A plain netlink socket, not pyroute2's: pyroute2 0.9 reads ahead into
        # a queue of its own, so after one get() the fd is no longer readable
        # while events wait in that queue, and polling the fd missed a veth's
        # carrier going down and up (measured: no event for seconds). The
        # kernel's datagrams are only a wake-up here; the state comes from a dump.
        poller = select.poll()
        poller.register(events.fileno(), select.POLLIN)
        while not self._stopping.is_set():
            if not poller.poll(200):
                continue
            changed = False
            while True:
                try:
                    data = events.recv(65536)
                except BlockingIOError:
                    break
                except OSError:  # ENOBUFS: events were lost; the dump catches up
                    changed = True
                    break
                changed = changed or _has_event(data)
            if changed:
                self._on_change(read_links())


def _event_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, _GROUPS))
    except OSError:
        sock.close()
        raise
    return sock


def _has_event(data: bytes) -> bool:
    """Whether a netlink datagram holds a link or address event (ENOBUFS-lost ones are caught by the dump)."""
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, pos)
        if kind in _EVENT_TYPES:
            return True
        if length < _NLMSGHDR.size:
            break
        pos += (length + 3) & ~3
    return False
