"""Which pools a Service may use, in which order, and for which IP families.

MetalLB's rules: `serviceAllocation` restricts a pool to namespaces (by name or
by namespace label selector) and to Services matching a label selector;
auto-assignment tries pools by `serviceAllocation.priority` (lower number
first, pools without a priority last) and then by name, skipping pools with
`autoAssign: false`, which serve only Services that name them or ask for one
of their IPs.

IP families: SingleStack wants the Service's first `ipFamilies` entry;
RequireDualStack wants IPv4 and IPv6 from one pool; PreferDualStack takes both
from a pool that has both, else the one family a pool has (pools with both
families are tried first, so "prefer" means something).
"""

from __future__ import annotations

from collections.abc import Mapping

from supervisor.config.model import IPAddressPool, IPFamilyPolicy, Service


def family_name(family: int) -> str:
    return "IPv4" if family == 4 else "IPv6"


def primary_family(service: Service) -> int:
    return service.ip_families[0] if service.ip_families else 4


def family_order(service: Service, families: frozenset[int] | set[int]) -> tuple[int, ...]:
    """`families` in the Service's preference order (its ipFamilies, then v4, v6)."""
    ranked = [f for f in service.ip_families if f in families]
    ranked += [f for f in (4, 6) if f in families and f not in ranked]
    return tuple(ranked)


def priority_key(pool: IPAddressPool) -> tuple[bool, int, str]:
    priority = pool.service_allocation.priority if pool.service_allocation else None
    return (priority is None, priority if priority is not None else 0, pool.name)


def refusal(pool: IPAddressPool, service: Service, namespace_labels: Mapping[str, str]) -> str | None:
    """Why `serviceAllocation` keeps `service` out of `pool` ("namespace" / "labels"), or None."""
    allocation = pool.service_allocation
    if allocation is None:
        return None
    if allocation.namespaces or allocation.namespace_selectors:
        by_name = service.namespace in allocation.namespaces
        by_labels = any(s.matches(namespace_labels) for s in allocation.namespace_selectors)
        if not (by_name or by_labels):
            return "namespace"
    if allocation.service_selectors and not any(s.matches(service.labels) for s in allocation.service_selectors):
        return "labels"
    return None


def refusal_text(pool: IPAddressPool, service: Service, why: str) -> str:
    if why == "namespace":
        return f"pool {pool.name} does not allow namespace {service.namespace} (serviceAllocation)"
    return f"pool {pool.name} does not select {service.key} by its labels (serviceAllocation.serviceSelectors)"


def families_for(service: Service, pool_families: frozenset[int]) -> tuple[int, ...] | None:
    """The families `service` takes from a pool that has `pool_families`, or None if it cannot."""
    match service.ip_family_policy:
        case IPFamilyPolicy.SINGLE_STACK:
            family = primary_family(service)
            return (family,) if family in pool_families else None
        case IPFamilyPolicy.REQUIRE_DUAL_STACK:
            return family_order(service, {4, 6}) if {4, 6} <= pool_families else None
        case IPFamilyPolicy.PREFER_DUAL_STACK:
            ranked = family_order(service, pool_families & {4, 6})
            return ranked or None


def requested_family_problem(service: Service, families: list[int]) -> str | None:
    """What is wrong with the families of the IPs a Service asks for (or holds), or None.

    Requested IPs are taken at their word for the family (a standalone file
    rarely spells out `ipFamilies`); only the count per family and the policy
    are checked.
    """
    for family in (4, 6):
        if families.count(family) > 1:
            count = families.count(family)
            return f"{service.key} asks for {count} {family_name(family)} addresses; at most one per family"
    if service.ip_family_policy is IPFamilyPolicy.SINGLE_STACK and len(families) > 1:
        return f"{service.key} asks for both IPv4 and IPv6 but its ipFamilyPolicy is SingleStack"
    if service.ip_family_policy is IPFamilyPolicy.REQUIRE_DUAL_STACK and set(families) != {4, 6}:
        return f"RequireDualStack but {service.key} asks only for {family_name(families[0])}"
    return None


def held_family_problem(service: Service, families: list[int]) -> str | None:
    """Whether IPs a Service holds still fit its families (stricter than for requests)."""
    problem = requested_family_problem(service, families)
    if problem is not None:
        return problem
    if service.ip_family_policy is IPFamilyPolicy.SINGLE_STACK and not service.requested_ips:
        wanted = primary_family(service)
        if families != [wanted]:
            return f"{service.key} is SingleStack {family_name(wanted)} but holds {family_name(families[0])}"
    return None
