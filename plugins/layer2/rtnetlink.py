"""The few rtnetlink requests layer 2 makes, on pyroute2's message classes only.

Layer 2 needs a link dump (which interfaces exist, their MAC and flags), an
address dump of `lo` and adding/removing one address there (bind-local).
pyroute2's `IPRoute` does that, but `import pyroute2` (or any submodule: the
package `__init__` imports every socket class it has: conntrack, nftables,
wireguard, NDB...) costs ~18 MiB PSS and ~300 modules per process (measured,
BENCHMARKS.md). What layer 2 uses of it is the message codec:
`pyroute2.netlink.rtnl.ifinfmsg`/`ifaddrmsg` and its `NetlinkError`, ~5 MiB
and ~60 modules when loaded without the package `__init__` (`_load_codec`).
The socket is a plain `AF_NETLINK` one, as for the link events already.

Not a general netlink client: one request at a time, on a fresh socket, in the
calling thread; a dump or an acknowledged change, nothing else.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import ipaddress
import os
import socket
import struct
import sys
import types
from collections.abc import Iterator
from typing import Any

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300

_NLMSGHDR = struct.Struct("=LHHLL")
_ERRNO = struct.Struct("=i")
# A dump request's body: struct ifinfomsg / ifaddrmsg with only the family set (all families).
_IFINFOMSG = bytes(16)
_IFADDRMSG = bytes(8)
_PACKAGE = "pyroute2"


def _load_codec() -> tuple[Any, Any, Any]:
    """pyroute2's ifinfmsg, ifaddrmsg and NetlinkError, without running `pyroute2/__init__.py`.

    While the submodules load, `pyroute2` in sys.modules is a bare package
    object with the real search path (what `__init__` would be without its
    imports); it is removed again afterwards, so a later `import pyroute2`
    anywhere in the process still runs the real `__init__` and finds these
    submodules already loaded.
    """
    if _PACKAGE in sys.modules:  # the real package is loaded already: nothing to save
        return _import_codec()
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("pyroute2 is not installed (pip install pyroute2)")
    stand_in = types.ModuleType(_PACKAGE)
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__spec__ = importlib.machinery.ModuleSpec(_PACKAGE, None, is_package=True)
    stand_in.__spec__.submodule_search_locations = stand_in.__path__
    sys.modules[_PACKAGE] = stand_in
    try:
        return _import_codec()
    finally:
        if sys.modules.get(_PACKAGE) is stand_in:
            del sys.modules[_PACKAGE]


def _import_codec() -> tuple[Any, Any, Any]:
    # In a function: `_load_codec` runs it while the stand-in package is in sys.modules (10.6 MiB PSS for
    # these three instead of 23.8-25.0 through pyroute2's __init__, BENCHMARKS.md).
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    return ifinfmsg, ifaddrmsg, NetlinkError


ifinfmsg, ifaddrmsg, NetlinkError = _load_codec()


class _Socket:
    """One NETLINK_ROUTE socket for one request; the kernel's replies come back as raw messages."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._seq = 0

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *_: object) -> None:
        self._sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> Iterator[tuple[int, bytes]]:
        """Send one request; yield (type, whole message) of each reply until DONE or the ACK.

        A negative NLMSG_ERROR raises pyroute2's NetlinkError with the errno, as IPRoute would.
        """
        self._seq += 1
        seq = self._seq
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags | NLM_F_REQUEST, seq, 0)
        self._sock.send(header + body)
        while True:
            data = self._sock.recv(1 << 20)
            pos = 0
            while pos + _NLMSGHDR.size <= len(data):
                length, msg_type, _, msg_seq, _ = _NLMSGHDR.unpack_from(data, pos)
                if length < _NLMSGHDR.size:
                    raise NetlinkError(0, "malformed netlink reply")
                message = data[pos : pos + length]
                pos += (length + 3) & ~3
                if msg_seq != seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    (code,) = _ERRNO.unpack_from(message, _NLMSGHDR.size)
                    if code:
                        raise NetlinkError(-code, os.strerror(-code))
                    return  # the ACK of a change
                yield msg_type, message


def _decode(cls: Any, message: bytes) -> Any:
    msg = cls(message)
    msg.decode()
    return msg


def dump_links() -> list[Any]:
    """Every link of this network namespace, as pyroute2 `ifinfmsg` messages (RTM_NEWLINK)."""
    with _Socket() as sock:
        return [_decode(ifinfmsg, m) for _, m in sock.request(RTM_GETLINK, NLM_F_DUMP, _IFINFOMSG)]


def dump_addresses(index: int) -> list[Any]:
    """The addresses on the link `index`, as pyroute2 `ifaddrmsg` messages."""
    with _Socket() as sock:
        messages = [_decode(ifaddrmsg, m) for _, m in sock.request(RTM_GETADDR, NLM_F_DUMP, _IFADDRMSG)]
    return [m for m in messages if m["index"] == index]


def change_address(
    add: bool, index: int, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, *, attrs: dict[str, Any]
) -> None:
    """Add (RTM_NEWADDR, failing with EEXIST) or remove (RTM_DELADDR) `ip`/max on link `index`; waits for the ACK."""
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    msg["prefixlen"] = ip.max_prefixlen
    msg["index"] = index
    msg["attrs"] = [("IFA_LOCAL", str(ip)), ("IFA_ADDRESS", str(ip)), *attrs.items()]
    msg.encode()
    body = bytes(msg.data[_NLMSGHDR.size :])
    flags = (NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL) if add else NLM_F_ACK
    with _Socket() as sock:
        for _ in sock.request(RTM_NEWADDR if add else RTM_DELADDR, flags, body):
            pass
