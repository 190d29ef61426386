"""The allocator: which LoadBalancer Service gets which IP, as a pure function.

`allocate(config, previous)` takes the whole config and the assignments
persisted so far and returns every Service's IPs or its pending reason, plus
per-pool counts. No I/O, no clock, no randomness: every node that reads the
same config and state computes the same answer, which is how a standalone
cluster agrees without a coordinator.

Order of work (MetalLB lost IPs after restarts by allocating in event order;
here the order is fixed):

1. Rebuild what Services already hold, in namespace/name order:
   first `status.loadBalancer.ingress` (`Service.status_ips`), then, for
   Services whose status is empty or no longer valid, `previous` (the
   standalone state file). Status wins over the state file because it is what
   the user sees and what `plan --write-status` pins: every node reads the
   same file, while state files are per node. A held IP is kept while it is
   still valid: inside one pool the Service may use (`serviceAllocation`, the
   requested pool, the requested IPs), of the right families, and shareable
   with whoever already holds it. `autoAssign: false` does not evict (as in
   MetalLB). What is invalid is dropped with a warning.
   A Service whose spec is invalid (`Service.problem`) keeps what it holds,
   as in MetalLB, and is otherwise pending with its problem as the reason.
2. Allocate the rest, in namespace/name order, Services asking for specific
   IPs first (so an auto-assigned Service never takes an IP that a Service
   in the same file spells out), then everybody else. A pending Service never
   takes an IP someone holds.

The free-address bookkeeping lives in `freeips`, sharing rules in `sharing`,
pool eligibility and families in `poolselect`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from supervisor.allocating.freeips import PoolIndex, Position
from supervisor.allocating.poolselect import (
    family_name,
    fits,
    held_family_problem,
    primary_family,
    priority_key,
    refusal,
    refusal_text,
    requested_family_problem,
    wanted_families,
)
from supervisor.allocating.results import AllocationResult, Assignment, PoolCounts
from supervisor.allocating.sharing import SHARING_ANNOTATION, Holder, sharing_conflict
from supervisor.config import lbclass
from supervisor.config.model import Config, IPAddress, IPAddressPool, IPFamilyPolicy, Service, ServiceKey

log = logging.getLogger(__name__)

_NO_PREVIOUS: Mapping[ServiceKey, tuple[IPAddress, ...]] = MappingProxyType({})
# How many pools a "requested IP is in no pool" message lists before "… N more".
_POOLS_LISTED = 5


def allocate(
    config: Config,
    previous: Mapping[ServiceKey, tuple[IPAddress, ...]] = _NO_PREVIOUS,
    *,
    lb_class: str | None = None,
) -> AllocationResult:
    """Assign IPs to every LoadBalancer Service of `config` that metalloid serves.

    `previous` is what was assigned before (the state file). `lb_class` is the
    `spec.loadBalancerClass` this instance serves: None serves Services without
    a class (MetalLB's default), a name serves only Services of that class.
    """
    run = _Run(config)
    ours: dict[ServiceKey, Service] = {}
    for service in config.services:
        # A duplicate namespace/name is a `check` error; the first one wins here.
        if lbclass.is_ours(service, lb_class):
            ours.setdefault(service.key, service)
    # (key, service) pairs: `Service.key` builds a new ServiceKey on every call,
    # which would dominate the cost of an allocation.
    services = [(key, ours[key]) for key in sorted(ours)]
    for key, service in services:
        if service.status_ips:
            run.keep(key, service, service.status_ips, "status.loadBalancer.ingress")
    for key, service in services:
        held = previous.get(key, ())
        if not held:
            continue
        if key in run.assignments:
            if set(held) != set(run.assignments[key].ips):
                run.warnings.append(
                    f"{key}: status.loadBalancer.ingress ({_ips(service.status_ips)}) differs from the "
                    f"state file ({_ips(held)}); keeping the status"
                )
            continue
        run.keep(key, service, held, "the state file")
    for key, service in services:
        # An invalid spec (Service.problem) gets nothing new, as MetalLB's
        # AllocationFailed; an IP it already held was kept above, as MetalLB
        # keeps it (LoadBalancerFailed) until the spec is fixed.
        if service.problem is not None and key not in run.assignments:
            run.pending[key] = service.problem
    for wants_ips in (True, False):
        for key, service in services:
            if key not in run.assignments and key not in run.pending and bool(service.requested_ips) is wants_ips:
                run.assign_new(key, service)
    for key, service in services:
        if key in run.pending and service.problem is None:
            run.explain_pending(key, service)
    problems = {key: service.problem for key, service in services if service.problem is not None}
    return run.result([key for key, _ in services], problems)


def _ips(ips: tuple[IPAddress, ...] | list[IPAddress]) -> str:
    return ", ".join(str(ip) for ip in ips)


def _dedupe(ips: tuple[IPAddress, ...]) -> list[IPAddress]:
    return list(dict.fromkeys(ips))


class _Run:
    """The mutable bookkeeping of one `allocate` call (never escapes it)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # A duplicate pool name is a `check` error; the first one wins, as in `Config.pool`.
        first: dict[str, IPAddressPool] = {}
        for pool in config.pools:
            first.setdefault(pool.name, pool)
        self.pools = list(first.values())
        self.indexes = {pool.name: PoolIndex(pool) for pool in self.pools}
        self.by_name = sorted(self.pools, key=lambda p: p.name)
        self.families = {pool.name: pool.families() for pool in self.pools}
        self._namespace_labels: dict[str, dict[str, str]] = {}
        # Per family, keyed by the integer value: hashing an int is far cheaper
        # than hashing an ipaddress object, and `_pick` never builds one.
        self.holders: dict[int, dict[int, Holder]] = {4: {}, 6: {}}
        # IPs held under a sharing key, per (pool, key, family): where a Service
        # with that key looks first, so same-key Services co-locate (MetalLB).
        self.shared: dict[tuple[str, str, int], list[IPAddress]] = {}
        self.assignments: dict[ServiceKey, Assignment] = {}
        self.pending: dict[ServiceKey, str] = {}
        self.warnings: list[str] = []

    # --- bookkeeping -------------------------------------------------------

    def holder(self, ip: IPAddress) -> Holder | None:
        return self.holders[ip.version].get(int(ip))

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        labels = self._namespace_labels.get(namespace)
        if labels is None:
            labels = self._namespace_labels[namespace] = self.config.namespace_labels(namespace)
        return labels

    def _commit(self, key: ServiceKey, service: Service, pool: IPAddressPool, ips: list[IPAddress]) -> None:
        index = self.indexes[pool.name]
        for ip in ips:
            holder = self.holder(ip)
            if holder is not None:
                holder.join(key, service)
                continue
            self.holders[ip.version][int(ip)] = Holder.first(ip, pool.name, key, service)
            position = index.locate(ip)
            if position is not None:
                index.mark(position)
            if service.sharing_key:
                self.shared.setdefault((pool.name, service.sharing_key, ip.version), []).append(ip)
        # The order is MetalLB's: requested and held IPs as listed, new dual-stack
        # IPs IPv4 first. It matters: the first IP decides the layer 2 election.
        self.assignments[key] = Assignment(
            service=key, ips=tuple(ips), pool=pool.name, sharing_key=service.sharing_key or None
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("ip.assigned service=%s ips=%s pool=%s", key, _ips(ips), pool.name)

    def _pool_holding(self, ip: IPAddress) -> IPAddressPool | None:
        """The pool whose ranges contain `ip` (buggy or not); config order on overlap."""
        return next((p for p in self.pools if any(ip in r for r in p.addresses)), None)

    def _conflict(self, key: ServiceKey, service: Service, ips: list[IPAddress]) -> str | None:
        for ip in ips:
            holder = self.holder(ip)
            if holder is not None:
                problem = sharing_conflict(holder, key, service)
                if problem:
                    return problem
        return None

    def _pool_for_ips(self, service: Service, ips: list[IPAddress], what: str) -> IPAddressPool | str:
        """The one pool `ips` come from and `service` may use, or why there is none."""
        # MetalLB's poolFor: the pool that can give every one of the IPs. Pools
        # overlap only in a config `check` rejects; then the requested pool,
        # else config order, decides (MetalLB's map order is random).
        wholes = [p for p in self.pools if all(p.contains(ip) for ip in ips)]
        if wholes:
            named = [p for p in wholes if p.name == service.requested_pool]
            return self._allowed(service, ips, (named or wholes)[0], what)
        pools: list[IPAddressPool] = []
        for ip in ips:
            pool = self._pool_holding(ip)
            if pool is None:
                return f"{what} {ip} is in no IPAddressPool ({self._pool_list()})"
            if not pool.contains(ip):
                return f"{what} {ip} ends in .0 or .255, which pool {pool.name} avoids (avoidBuggyIPs: true)"
            pools.append(pool)
        spread = ", ".join(f"{ip} in {p.name}" for ip, p in zip(ips, pools, strict=True))
        return f"{what}s must come from one pool ({spread})"

    def _allowed(self, service: Service, ips: list[IPAddress], pool: IPAddressPool, what: str) -> IPAddressPool | str:
        """`pool` if `service` may take `ips` from it, else why not."""
        wanted = service.requested_pool
        if wanted is not None and wanted != pool.name:
            if self.config.pool(wanted) is None:
                return f"pool {wanted} does not exist"
            return f"{what} {ips[0]} is in pool {pool.name}, not in pool {wanted} (metallb.io/address-pool)"
        why = refusal(pool, service, self.namespace_labels(service.namespace))
        if why is not None:
            return refusal_text(pool, service, why)
        return pool

    def _pool_list(self) -> str:
        pools = self.pools
        if not pools:
            return "no pools are defined"
        listed = [f"{p.name} {' '.join(r.text for r in p.addresses)}" for p in pools[:_POOLS_LISTED]]
        more = f", … {len(pools) - _POOLS_LISTED} more" if len(pools) > _POOLS_LISTED else ""
        return "pools: " + ", ".join(listed) + more

    # --- pass 1: rebuild ---------------------------------------------------

    def keep(self, key: ServiceKey, service: Service, held: tuple[IPAddress, ...], origin: str) -> None:
        """Keep the IPs `service` holds according to `origin` if they are still valid."""
        ips = _dedupe(held)
        problem = held_family_problem(service, [ip.version for ip in ips])
        if problem is None and service.requested_ips and set(ips) != set(service.requested_ips):
            problem = f"{key} now asks for {_ips(service.requested_ips)}"
        pool = self._pool_for_ips(service, ips, "IP") if problem is None else problem
        if not isinstance(pool, str):
            problem = self._conflict(key, service, ips)
            if problem is None:
                self._commit(key, service, pool, ips)
                return
        self.warnings.append(f"{key}: dropping {_ips(ips)} from {origin}: {problem or pool}")

    # --- pass 2: new allocations ------------------------------------------

    def assign_new(self, key: ServiceKey, service: Service) -> None:
        found = self._find(key, service)
        if isinstance(found, str):
            self.pending[key] = found
        else:
            self._commit(key, service, *found)

    def explain_pending(self, key: ServiceKey, service: Service) -> None:
        """Say why `service` is pending as of the final state, not as of its turn.

        Its turn came before later Services took more IPs; the final state is
        what a re-run (with this run's output as `previous`) sees, so the reason
        stays the same from run to run. Nothing freed up since its turn (a run
        only ever takes IPs), so it still cannot be served.
        """
        found = self._find(key, service)
        if isinstance(found, str):
            self.pending[key] = found
        log.debug("ip.pending service=%s reason=%s", key, self.pending[key])

    def _find(self, key: ServiceKey, service: Service) -> tuple[IPAddressPool, list[IPAddress]] | str:
        """The pool and IPs `service` would get now, or why it gets none."""
        if service.requested_ips:
            return self._find_requested(key, service)
        return self._find_auto(key, service)

    def _find_requested(self, key: ServiceKey, service: Service) -> tuple[IPAddressPool, list[IPAddress]] | str:
        ips = _dedupe(service.requested_ips)
        problem = requested_family_problem(service, [ip.version for ip in ips])
        if problem is not None:
            return problem
        pool = self._pool_for_ips(service, ips, "requested IP")
        if isinstance(pool, str):
            return pool
        conflict = self._conflict(key, service, ips)
        if conflict is not None:
            return conflict
        return pool, ips

    def _find_auto(self, key: ServiceKey, service: Service) -> tuple[IPAddressPool, list[IPAddress]] | str:
        wanted = wanted_families(service)
        if service.ip_family_policy is IPFamilyPolicy.REQUIRE_DUAL_STACK and len(wanted) < 2:
            # MetalLB: "Service requires dual stack but not enough clusterips".
            return (
                f"RequireDualStack but spec.ipFamilies lists only {family_name(wanted[0])}; "
                "list both IPv4 and IPv6"
            )
        tiers = self._tiers(service)
        if isinstance(tiers, str):
            return tiers
        exhausted: list[str] = []
        for pools in tiers:
            found = self._best_pool(pools, key, service, wanted, exhausted)
            if found is not None:
                return found
        plural = "pools" if len(exhausted) > 1 else "pool"
        reason = f"no available IPs in {plural} {', '.join(dict.fromkeys(exhausted))}"
        if service.sharing_key:
            reason += f"; no IP already shared under {SHARING_ANNOTATION} {service.sharing_key!r} can take its ports"
        return reason

    def _best_pool(
        self,
        pools: list[IPAddressPool],
        key: ServiceKey,
        service: Service,
        wanted: tuple[int, ...],
        exhausted: list[str],
    ) -> tuple[IPAddressPool, list[IPAddress]] | None:
        """MetalLB's `findBestPoolForService` over `pools`, in order; notes full pools in `exhausted`."""
        prefer = len(wanted) == 2 and service.ip_family_policy is IPFamilyPolicy.PREFER_DUAL_STACK
        primary: tuple[IPAddressPool, list[IPAddress]] | None = None
        secondary: tuple[IPAddressPool, list[IPAddress]] | None = None
        for pool in pools:
            index = self.indexes[pool.name]
            free: dict[int, IPAddress] = {}
            full: list[str] = []
            for family in wanted:
                if family not in self.families[pool.name]:
                    continue
                ip = self._pick(index, family, key, service)
                if ip is None:
                    label = "" if wanted == (4,) else f" {family_name(family)}"
                    full.append(f"{index.used(family)} of {index.total(family)}{label} assigned")
                else:
                    free[family] = ip
            if full:
                exhausted.append(f"{pool.name} ({', '.join(full)})")
            if len(free) == len(wanted):
                return pool, [free[f] for f in sorted(free)]
            if prefer:
                if primary is None and wanted[0] in free:
                    primary = (pool, [free[wanted[0]]])
                if secondary is None and wanted[1] in free:
                    secondary = (pool, [free[wanted[1]]])
        return primary or secondary

    def _tiers(self, service: Service) -> list[list[IPAddressPool]] | str:
        """The pools to try, as MetalLB's tiers (pinned, then unpinned), or why there are none."""
        if service.requested_pool is not None:
            named = self.config.pool(service.requested_pool)
            if named is None:
                return f"pool {service.requested_pool} does not exist"
            if not fits(service, self.families[named.name]):
                return self._no_family(service, [named])
            why = refusal(named, service, self.namespace_labels(service.namespace))
            if why is not None:
                return refusal_text(named, service, why)
            return [[named]]
        if not self.pools:
            return "no IPAddressPool exists; create one that covers the Service"
        fitting = [p for p in self.by_name if fits(service, self.families[p.name])]
        if not fitting:
            return self._no_family(service, self.by_name)
        auto = [p for p in fitting if p.auto_assign]
        if not auto:
            names = ", ".join(p.name for p in fitting)
            return (
                f"every pool that could serve it has autoAssign: false ({names}); name one with "
                "metallb.io/address-pool or ask for one of its IPs"
            )
        labels = self.namespace_labels(service.namespace)
        refusals = [(p, refusal(p, service, labels)) for p in auto]
        matching = [p for p, why in refusals if why is None and p.service_allocation is not None]
        pinned = sorted(matching, key=priority_key)
        unpinned = [p for p in auto if p.service_allocation is None]
        if pinned or unpinned:
            return [tier for tier in (pinned, unpinned) if tier]
        reasons = {why for _, why in refusals}
        if len(refusals) == 1:
            pool, why = refusals[0]
            return refusal_text(pool, service, why or "")
        if reasons == {"namespace"}:
            return f"no pool allows namespace {service.namespace} (serviceAllocation)"
        if reasons == {"labels"}:
            return f"no pool selects {service.key} by its labels (serviceAllocation.serviceSelectors)"
        return f"no pool allows {service.key} (serviceAllocation namespaces or serviceSelectors)"

    def _no_family(self, service: Service, pools: list[IPAddressPool]) -> str:
        named = f"pool {service.requested_pool}" if service.requested_pool else None
        match service.ip_family_policy:
            case IPFamilyPolicy.REQUIRE_DUAL_STACK:
                if named:
                    return f"RequireDualStack but {named} does not have both IPv4 and IPv6"
                return "RequireDualStack but no pool has both IPv4 and IPv6"
            case IPFamilyPolicy.SINGLE_STACK:
                family = family_name(primary_family(service))
                return f"{named} has no {family} addresses" if named else f"no pool serves {family}"
            case _ if len(wanted_families(service)) == 1:
                # PreferDualStack with one ipFamilies entry wants exactly that family (MetalLB).
                family = family_name(primary_family(service))
                return f"{named} has no {family} addresses" if named else f"no pool serves {family}"
            case _:
                return f"{named} has no addresses" if named else "no pool has any addresses"

    def _pick(self, index: PoolIndex, family: int, key: ServiceKey, service: Service) -> IPAddress | None:
        """The lowest IP of `family` in spec order that `service` can take from the pool."""
        best: Position | None = None
        held = self.holders[family]
        while (free := index.lowest_free(family)) is not None:
            if index.int_at(free) not in held:
                best = free
                break
            # Held through an overlapping pool (a config `check` rejects): mark and move on.
            index.mark(free)
        if service.sharing_key:
            for ip in self.shared.get((index.pool.name, service.sharing_key, family), ()):
                position = index.locate(ip)
                if position is None or (best is not None and position.key() >= best.key()):
                    continue
                if sharing_conflict(held[int(ip)], key, service) is None:
                    best = position
        return None if best is None else index.ip_at(best)

    # --- the answer ----------------------------------------------------------

    def result(self, keys: list[ServiceKey], problems: dict[ServiceKey, str]) -> AllocationResult:
        counts = tuple(
            PoolCounts(
                pool=name,
                total_v4=index.total(4),
                assigned_v4=index.used(4),
                total_v6=index.total(6),
                assigned_v6=index.used(6),
            )
            for name, index in self.indexes.items()
        )
        return AllocationResult(
            assignments={k: self.assignments[k] for k in keys if k in self.assignments},
            pending={k: self.pending[k] for k in keys if k in self.pending},
            pools=counts,
            warnings=tuple(self.warnings),
            problems=problems,
        )
