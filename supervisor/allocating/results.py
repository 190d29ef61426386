"""What the allocator decides, as values: assignments, pending reasons, pool counts.

These travel on queues (allocator → supervisor → announcers, `/status`,
`metalloid plan`) so they are frozen, slotted and picklable. The allocator never
raises for a service it cannot serve: it returns a `pending` reason instead, the
way MetalLB's allocator returns errors as values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config.model import IPAddress, ServiceKey
from supervisor.pickling import quick_pickle


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """The IPs one Service holds and the pool they came from.

    A dual-stack Service holds one IPv4 and one IPv6 address from the same pool.
    """

    service: ServiceKey
    ips: tuple[IPAddress, ...]
    pool: str
    sharing_key: str | None = None


# MetalLB's poolCount: a CIDR of 2**62 addresses or more "will never run out"
# and counts as the largest int64; metrics and pool status show that value.
HUGE_RANGE = 2**62
MAX_COUNT = 2**63 - 1


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class PoolCounts:
    """Per-pool, per-family counts. A shared IP counts once (as MetalLB's do)."""

    pool: str
    total_v4: int
    assigned_v4: int
    total_v6: int
    assigned_v6: int

    @property
    def total(self) -> int:
        """Both families, capped as MetalLB caps it."""
        return min(self.total_v4 + self.total_v6, MAX_COUNT)

    @property
    def available_v4(self) -> int:
        return self.total_v4 - self.assigned_v4

    @property
    def available_v6(self) -> int:
        return self.total_v6 - self.assigned_v6


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationResult:
    """The allocator's answer for a whole config.

    `assignments` and `pending` are keyed by service and together cover every
    LoadBalancer Service metalloid is responsible for; `warnings` are
    human-readable notes (deprecated annotations, kept-but-odd states).
    `problems` holds the Services whose spec is invalid (`Service.problem`):
    pending with that reason, or, like MetalLB, still holding an IP they
    held before (their Event says the spec is invalid).
    """

    assignments: dict[ServiceKey, Assignment]
    pending: dict[ServiceKey, str]
    pools: tuple[PoolCounts, ...]
    warnings: tuple[str, ...] = ()
    problems: dict[ServiceKey, str] = field(default_factory=dict)

    def ips_of(self, key: ServiceKey) -> tuple[IPAddress, ...]:
        found = self.assignments.get(key)
        return found.ips if found else ()
