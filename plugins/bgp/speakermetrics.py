"""The `metallb_speaker_announced` series of a plan.

Both BGP announcers (the FRR-driven `bgp` and the `bgp-stub` reference) export
the same series from the same plan; this keeps the set arithmetic in one place
so the two cannot drift apart. It only talks to the host's metric calls; it
reads no FRR state. The `metallb_bgp_*` and `metallb_bfd_*` families are
`plugins.bgp.frrmetrics`.
"""

from __future__ import annotations

from plugins.bgp.planning import Plan
from supervisor.api import AnnouncerHost

SPEAKER_ANNOUNCED = "metallb_speaker_announced"

Series = frozenset[tuple[tuple[str, str], ...]]


def announced_series(plan: Plan, node_name: str) -> Series:
    """One `metallb_speaker_announced` label set per (Service, advertised prefix), as MetalLB labels it."""
    return frozenset(
        (("service", str(service)), ("protocol", "bgp"), ("node", node_name), ("ip", str(route.prefix.network_address)))
        for route in plan.routes
        for service in route.services
    )


def sync_announced(host: AnnouncerHost, previous: Series, current: Series) -> Series:
    """Set the new series to 1 and remove the ended ones; returns `current` to keep as the next `previous`."""
    for series in sorted(current - previous):
        host.gauge(SPEAKER_ANNOUNCED, "Services being announced from this node", dict(series), 1)
    for series in sorted(previous - current):
        host.remove(SPEAKER_ANNOUNCED, dict(series))
    return current
