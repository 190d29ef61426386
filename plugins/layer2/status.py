"""What layer 2 tells /status: announcements with their reasons, elections, failures, conflicts.

`report()` turns the announcer's state into the documents /status serves:
every Service announced through every held IP and why this node announces
it (the election, plus a split-brain keep or yield), every election with
the reason an IP this node won is not announced (yielded to a lower MAC, or
MetalLB's announceFailed: no suitable interface open), the open interfaces,
and the conflicts being resolved.

Pure: state in, plain dicts out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from plugins.layer2 import conflicts, frames
from plugins.layer2.ownership import Held
from plugins.layer2.planning import Plan
from supervisor.api import IPAddress

PROTOCOL = "layer2"
NO_INTERFACE = "won the election but no suitable interface is open on this node"


def announce_reason(node: str, ip: IPAddress, state: conflicts.Conflicts) -> str:
    reason = f"{node} won the election (MetalLB ranking)"
    for (held, ifname), d in state.defended.items():
        if held == ip:
            reason += (f"; keeps it on {ifname} against {frames.mac_text(d.over_mac)} "
                       "(duplicate announcement in a split brain: the lower MAC keeps)")  # fmt: skip
    return reason + (f"; {yielded}" if (yielded := yield_reason(ip, state)) else "")


def yield_reason(ip: IPAddress, state: conflicts.Conflicts) -> str | None:
    found = [(ifname, y) for (held, ifname), y in state.yielded.items() if held == ip]
    if not found:
        return None
    where = ", ".join(f"to {frames.mac_text(y.to_mac)} on {ifname}" for ifname, y in found)
    hold = conflicts.YIELD_HOLD_SECONDS
    return (f"yielded {where}: a lower MAC announces it too (split brain); this node announces it again "
            f"{hold:.1f} s after that MAC was last heard, or when members rejoin")  # fmt: skip


def _elections(node: str, plan: Plan | None, owned: Mapping[IPAddress, Held],
               state: conflicts.Conflicts) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:  # fmt: skip
    elections: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for entry in plan.elections if plan else ():
        reason = entry.not_announced_reason
        if reason is None and entry.winner == node and entry.ip not in owned:
            yielded = yield_reason(entry.ip, state)
            reason = yielded or NO_INTERFACE
            if yielded is None:  # won, and nothing to answer on: MetalLB's announceFailed
                failures.append({"service": str(entry.service), "ip": str(entry.ip), "protocol": PROTOCOL,
                                 "node": node, "reason": NO_INTERFACE})
        elections.append(
            {
                "service": str(entry.service), "ip": str(entry.ip), "winner": entry.winner,
                "ranking": list(entry.election.ranking) if entry.election else [],
                "excluded": [list(x) for x in entry.election.excluded] if entry.election else [],
                # Why no node at all announces it; without an election the reason is the Service's own.
                "not_served": entry.election.not_served if entry.election else entry.not_announced_reason,
                "not_announced_reason": reason,
            }
        )  # fmt: skip
    return elections, failures


def report(
    *,
    node: str,
    plan: Plan | None,
    owned: Mapping[IPAddress, Held],
    state: conflicts.Conflicts,
    ports: Mapping[str, bytes],
    ready: Collection[str],
    sockets_ready: bool,
    duplicates: list[dict[str, Any]],
    bound: Collection[IPAddress],
    socket_drops: Mapping[str, int],
    socket_errors: Mapping[str, str],
    kernel_arp: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """/status's layer 2 documents.

    `ports`: open interface -> its MAC; `ready`: links up with a carrier; the
    rest (sockets, duplicates seen, IPs bound on `lo`, where ARP is answered
    in the kernel) is reported as given.
    """
    announcements = [
        {
            "service": str(service), "ip": str(ip), "protocol": PROTOCOL, "node": node,
            "interfaces": list(held.interfaces), "reason": announce_reason(node, ip, state),
        }
        for ip, held in sorted(owned.items(), key=lambda kv: (kv[0].version, int(kv[0])))
        for service in held.ownership.services
    ]  # fmt: skip
    elections, failures = _elections(node, plan, owned, state)
    return {
        "announcements": announcements,
        "failures": failures,
        "elections": elections,
        "interfaces": [
            {"name": name, "mac": frames.mac_text(mac), "ready": name in ready} for name, mac in sorted(ports.items())
        ],
        "sockets_ready": sockets_ready,
        "duplicates": duplicates,
        "yielded": [
            {"ip": str(y.ip), "interface": y.interface, "to_mac": frames.mac_text(y.to_mac), "since": y.since}
            for y in state.yielded.values()
        ],
        "reasserted": [
            {"ip": str(d.ip), "interface": d.interface, "over_mac": frames.mac_text(d.over_mac), "since": d.since}
            for d in state.defended.values()
        ],
        "bound_local": sorted(str(ip) for ip in bound),
        "socket_drops": dict(socket_drops),
        "socket_errors": dict(socket_errors),
        "arp_in_kernel": dict(kernel_arp) if kernel_arp is not None else {},
    }
