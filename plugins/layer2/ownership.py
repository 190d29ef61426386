"""Which IPs this node announces, on which interfaces: a `Plan` meets the open sockets and the yields.

MetalLB's speaker keeps, per IP, the interfaces it answers on; here that is
`Held`. `wanted()` turns the plan's `Ownership` list into the interfaces this
node can answer on now (the named ones, or every open one, minus the ones
yielded in a split brain, see `conflicts`), and `changes()` compares it with
what is held: which IPs to withdraw first (so the responder never holds an IP
that is gone), and for every IP still or newly held which interfaces start a
gratuitous burst, which stop, which Services start or stop being announced
(the `metallb_speaker_announced` gauge) and whether it is bound on `lo`.

Pure: no sockets, no clock. `announcer` applies the result.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from plugins.layer2.planning import Ownership, Plan
from supervisor.api import IPAddress, ServiceKey

Key = tuple[IPAddress, str]  # (ip, interface): the unit of gratuitous bursts and of yields
# The responder's owned and watched maps: packed IP -> interfaces, one map per family.
PackedMap = Mapping[bytes, frozenset[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """An IP this node announces, and the interfaces it answers on (none: it cannot now)."""

    ownership: Ownership
    interfaces: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One IP held after the change, and what differs from before."""

    held: Held
    started: tuple[str, ...]  # interfaces that start a gratuitous burst
    stopped: tuple[str, ...]  # interfaces no longer answered on
    announced: tuple[ServiceKey, ...]  # Services newly announced through this IP
    unannounced: tuple[ServiceKey, ...]  # Services no longer announced through it


def wanted(plan: Plan, ports: Collection[str]) -> dict[IPAddress, Held]:
    """Every IP the plan gives this node, on the interfaces open now (before any yield)."""
    out: dict[IPAddress, Held] = {}
    for own in plan.owned:
        names = own.interfaces or tuple(sorted(ports))
        out[own.ip] = Held(ownership=own, interfaces=tuple(n for n in names if n in ports))
    return out


def keys(held: Mapping[IPAddress, Held]) -> list[Key]:
    return [(ip, name) for ip, h in held.items() for name in h.interfaces]


def without(held: Mapping[IPAddress, Held], yielded: Collection[Key]) -> dict[IPAddress, Held]:
    """`held` minus the (ip, interface) pairs yielded to a lower MAC; an IP may be left with none."""
    return {
        ip: Held(ownership=h.ownership, interfaces=tuple(n for n in h.interfaces if (ip, n) not in yielded))
        for ip, h in held.items()
    }


def withdrawn(owned: Mapping[IPAddress, Held], want: Mapping[IPAddress, Held]) -> list[IPAddress]:
    """IPs held now that are not wanted, or wanted on no interface: withdraw these first."""
    return [ip for ip in owned if ip not in want or not want[ip].interfaces]


def changes(owned: Mapping[IPAddress, Held], want: Mapping[IPAddress, Held]) -> list[Change]:
    """What to do for every wanted IP that has an interface to answer on."""
    out: list[Change] = []
    for ip, h in want.items():
        if not h.interfaces:
            continue
        before = owned.get(ip)
        old_services = before.ownership.services if before else ()
        old_interfaces = before.interfaces if before else ()
        services = h.ownership.services
        out.append(Change(
            held=h,
            started=tuple(n for n in h.interfaces if n not in old_interfaces),
            stopped=tuple(n for n in old_interfaces if n not in h.interfaces),
            announced=tuple(s for s in services if s not in old_services),
            unannounced=tuple(s for s in old_services if s not in services),
        ))  # fmt: skip
    return out


def answering(held: Mapping[IPAddress, Held]) -> dict[IPAddress, tuple[str, ...]]:
    """The IPs that have an interface to answer on, for the responder."""
    return {ip: h.interfaces for ip, h in held.items() if h.interfaces}


def packed(by_ip: Mapping[IPAddress, Iterable[str]]) -> tuple[PackedMap, PackedMap]:
    """The responder's form: (IPv4, IPv6) maps from the packed address to its interfaces."""
    v4 = {ip.packed: frozenset(ifs) for ip, ifs in by_ip.items() if ip.version == 4}
    v6 = {ip.packed: frozenset(ifs) for ip, ifs in by_ip.items() if ip.version == 6}
    return v4, v6


def by_ip(keys: Iterable[Key]) -> dict[IPAddress, set[str]]:
    """(ip, interface) pairs grouped by IP."""
    out: dict[IPAddress, set[str]] = {}
    for ip, name in keys:
        out.setdefault(ip, set()).add(name)
    return out
