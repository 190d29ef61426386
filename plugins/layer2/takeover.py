"""Taking an IP over from another node after a membership change, and timing it.

A failover (MetalLB has no word for it; keepalived's is the BACKUP -> MASTER
transition) is a view whose members changed and which gives this node an IP
that another node won in the previous view. Two things follow from it:
- `metalloid_failover_seconds`, the time from the membership change to this
  node's first gratuitous frame for the IP (`noted`, `forget`, `seconds`);
- whether a member that just left won one of the IPs taken (`from_leavers`):
  it may be stopping on SIGTERM and still answering for its handover overlap,
  so `conflicts.took_over` must not let this node yield to it.
A first view (a start) or a config change that moves an IP is not a failover.

Pure: views and plans in, times passed in. `announcer` keeps the state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from plugins.layer2.planning import Plan
from supervisor.api import AnnouncerView, IPAddress

# IP -> (monotonic time of the membership change, monotonic time this node learned of it).
Takeovers = dict[IPAddress, tuple[float, float]]


def noted(
    *,
    node: str,
    previous_view: AnnouncerView | None,
    previous_plan: Plan | None,
    view: AnnouncerView,
    current: Plan,
    owned: Collection[IPAddress],
    now: float,
) -> Takeovers:
    """The IPs this node wins from another node because membership changed (none held yet)."""
    if previous_view is None or previous_plan is None:
        return {}
    changed_at = view.members_changed_at
    if changed_at is None or view.members == previous_view.members:
        return {}
    before = {entry.ip: entry.winner for entry in previous_plan.elections}
    out: Takeovers = {}
    for own in current.owned:
        winner = before.get(own.ip)
        if own.ip not in owned and winner is not None and winner != node:
            out[own.ip] = (changed_at, now)
    return out


def from_leavers(
    *, previous_view: AnnouncerView | None, previous_plan: Plan | None, view: AnnouncerView, current: Plan
) -> bool:
    """Whether this view gives this node an IP that a member which just left won before."""
    if previous_view is None or previous_plan is None:
        return False
    left = previous_view.members - view.members
    if not left:
        return False
    before = {entry.ip: entry.winner for entry in previous_plan.elections}
    return any(before.get(own.ip) in left for own in current.owned)


def forget(takeovers: Takeovers, *, wanted: Mapping[IPAddress, object], now: float, window: float) -> Takeovers:
    """Drop takeovers that metalloid_failover_seconds must not time.

    An IP no longer won is not ours to time (winning it again later is a
    new story). A takeover noted more than one burst window ago whose first
    frame has still not gone out was held up by this node (no suitable
    interface open, the link down), not by failover: the frame that goes
    out when an interface finally appears would report that outage, maybe
    hours, as failover time. The age counts from when this node learned of
    the change, so a view that reached the announcer late is still timed.
    """
    return {ip: t for ip, t in takeovers.items() if ip in wanted and now - t[1] <= window}


def seconds(taken: tuple[float, float], *, now: float, window: float) -> float | None:
    """The failover time to report at the IP's first gratuitous frame, or None when it is too late to count."""
    changed_at, noted_at = taken
    if now - noted_at > window:
        return None
    return max(0.0, now - changed_at)
