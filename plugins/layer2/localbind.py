"""Standalone opt-in: bind announced IPs on `lo` so daemons on this host can serve them.

Kubernetes mode never does this (kube-proxy owns the traffic). In standalone
mode (`Settings.bind_local`, or the annotation `metalloid.io/bind-local:
"true"` on the pool or the L2Advertisement) the IP is added to `lo` as a /32
or /128. A dummy interface would be the tidier home, but these machines'
kernel has no dummy module (shared/FACTS.md), and `lo` is always there.

Linux would answer ARP for an address on `lo` from every interface (arp_ignore
0: any local address), which would make every node that ever bound it answer;
`net.ipv4.conf.all.arp_ignore=1` (answer only for addresses on the incoming
interface) and `arp_announce=2` (never use such an address as ARP source)
leave ARP to the responder. IPv6 neighbour discovery only answers for
addresses on the incoming interface already.

Our addresses are marked so a crashed run's leftovers can be removed at start
without touching the operator's: IFA_PROTO `ADDRESS_PROTO` on both families
(kernel ≥ 5.18) and the label `lo:mlb` on IPv4.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK = "lo"
LABEL = "lo:mlb"
# IFA_PROTO values 0-3 are the kernel's and userspace tools; 0x6d is 'm'.
ADDRESS_PROTO = 0x6D
SYSCTLS = {
    "net/ipv4/conf/all/arp_ignore": "1",
    "net/ipv4/conf/all/arp_announce": "2",
}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def set_sysctls(root: Path = Path("/proc/sys")) -> None:
    """Keep the kernel from answering ARP for addresses bound on `lo` (left set on exit)."""
    for key, value in SYSCTLS.items():
        path = root / key
        if path.read_text().strip() != value:
            path.write_text(value)
            log.info("layer2.sysctl.set key=%s value=%s", key.replace("/", "."), value)


def _is_ours(msg: Any) -> bool:
    return bool(msg.get_attr("IFA_PROTO") == ADDRESS_PROTO or msg.get_attr("IFA_LABEL") == LABEL)


class LocalBinder:
    """Adds and removes our marked addresses on `lo` (short-lived netlink sockets, `rtnetlink.py`)."""

    def bound(self) -> frozenset[IPAddress]:
        from plugins.layer2 import rtnetlink  # deferred: +0.5 MiB PSS in the watcher (see interfaces.read_links)

        return frozenset(
            ipaddress.ip_address(m.get_attr("IFA_ADDRESS"))
            for m in rtnetlink.dump_addresses(socket.if_nametoindex(LOOPBACK))
            if _is_ours(m)
        )

    def bind(self, ip: IPAddress) -> None:
        if ip.version == 4:
            set_sysctls()
        from plugins.layer2 import rtnetlink  # deferred: +0.5 MiB PSS in the watcher (see interfaces.read_links)

        attrs: dict[str, Any] = {"IFA_PROTO": ADDRESS_PROTO}
        if ip.version == 4:
            attrs["IFA_LABEL"] = LABEL
        try:
            rtnetlink.change_address(True, socket.if_nametoindex(LOOPBACK), ip, attrs=attrs)
        except rtnetlink.NetlinkError as exc:
            if exc.code != 17:  # EEXIST: already bound, e.g. by a previous run
                raise
        log.info("layer2.bind_local.added ip=%s interface=%s", ip, LOOPBACK)

    def unbind(self, ip: IPAddress) -> None:
        from plugins.layer2 import rtnetlink  # deferred: +0.5 MiB PSS in the watcher (see interfaces.read_links)

        try:
            rtnetlink.change_address(False, socket.if_nametoindex(LOOPBACK), ip, attrs={})
        except rtnetlink.NetlinkError as exc:
            if exc.code != 99:  # EADDRNOTAVAIL: already gone
                raise
        log.info("layer2.bind_local.removed ip=%s interface=%s", ip, LOOPBACK)

    def remove_leftovers(self) -> tuple[IPAddress, ...]:
        """Remove every marked address: a crashed run may have left some behind."""
        leftovers = tuple(sorted(self.bound(), key=lambda ip: (ip.version, int(ip))))
        for ip in leftovers:
            self.unbind(ip)
        if leftovers:
            log.info("layer2.bind_local.leftovers_removed ips=%s", ",".join(map(str, leftovers)))
        return leftovers
