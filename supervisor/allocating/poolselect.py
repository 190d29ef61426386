"""Which pools a Service may use, in which order, and for which IP families.

MetalLB's rules (internal/allocator/allocator.go, `Allocate`):
`serviceAllocation` restricts a pool to namespaces (by name or by namespace
label selector) and to Services matching a label selector. Auto-assignment
first tries the *pinned* pools: those with a `serviceAllocation` that matches
the Service, ordered by `serviceAllocation.priority` (lower number first; 0 or
unset last). Only when none of them can serve it does it try the pools
without `serviceAllocation`. A pool with `serviceAllocation` never serves a
Service it does not match, and `autoAssign: false` pools serve only Services
that name them or ask for one of their IPs. MetalLB leaves the order among
equal priorities (and among the unpinned pools, a Go map) to chance; here ties
go by pool name, so every node computes the same answer.

IP families (`findBestPoolForService`): the Service's families are its
`ipFamilies` (MetalLB reads the clusterIPs, which Kubernetes lists in the same
order); one entry means one IP of that family, whatever the policy. Two
entries: the first pool that has a free IP of both families wins;
PreferDualStack then falls back to the first pool with a free IP of the
primary family (`ipFamilies[0]`), then of the secondary.
"""

from __future__ import annotations

from collections.abc import Mapping

from supervisor.config.model import IPAddressPool, IPFamilyPolicy, Service


def family_name(family: int) -> str:
    return "IPv4" if family == 4 else "IPv6"


def primary_family(service: Service) -> int:
    return service.ip_families[0] if service.ip_families else 4


def wanted_families(service: Service) -> tuple[int, ...]:
    """MetalLB's "service IP family": one family, or two (primary first) for dual stack."""
    return service.ip_families or (4,)


def priority_key(pool: IPAddressPool) -> tuple[bool, int, str]:
    """MetalLB's `sortPools`: priorities above 0 ascending, then 0 or unset; ties by name."""
    priority = pool.service_allocation.priority if pool.service_allocation else None
    ranked = priority is not None and priority > 0
    return (not ranked, priority if ranked and priority is not None else 0, pool.name)


def fits(service: Service, pool_families: frozenset[int]) -> bool:
    """Whether a pool with `pool_families` could ever give `service` its IPs."""
    wanted = wanted_families(service)
    if len(wanted) == 1:
        return wanted[0] in pool_families
    if service.ip_family_policy is IPFamilyPolicy.PREFER_DUAL_STACK:
        return bool(pool_families & set(wanted))
    return set(wanted) <= pool_families


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
