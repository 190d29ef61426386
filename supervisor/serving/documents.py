"""The JSON shapes of the allocator's answer that every output shares.

`metalloid plan -o json`, a node's /status and the offline /status of
`metalloid explain --config` describe a Service's assignment and a pool's
counts with the same keys (DESIGN.md); building them here keeps the three
documents from drifting apart. Pure: values in, dicts out, no I/O.
"""

from __future__ import annotations

from typing import Any

from supervisor.allocating.results import AllocationResult, PoolCounts
from supervisor.config.model import ServiceKey


def service_document(result: AllocationResult, key: ServiceKey) -> dict[str, Any]:
    """namespace, name, ips, pool, pending and problem of one Service (ips empty and pool None while pending).

    `problem` is set when the Service's spec is invalid: it is then pending
    with that reason, or still holds the IP it had before (as in MetalLB).
    """
    assignment = result.assignments.get(key)
    return {
        "namespace": key.namespace,
        "name": key.name,
        "ips": [str(ip) for ip in assignment.ips] if assignment else [],
        "pool": assignment.pool if assignment else None,
        "pending": result.pending.get(key),
        "problem": result.problems.get(key),
    }


def counts_document(counts: PoolCounts) -> dict[str, int]:
    """A pool's total, assigned and available addresses, per family (a shared IP counts once).

    Keys in DESIGN.md's order: total_v4, assigned_v4, available_v4, then the same for v6.
    """
    return {f"{what}_v{family}": int(getattr(counts, f"{what}_v{family}"))
            for family in (4, 6) for what in ("total", "assigned", "available")}
