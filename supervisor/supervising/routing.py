"""Routing as a pure function: (state, message) → (new state, messages to send).

The supervisor is a router with a memory (`RoutedState`). What it does with
a worker's config, allocation, membership or announcement message is decided
here, without processes, queues or clocks: `route` returns the new state, the
messages for each role, and what was newly accepted, and never touches the
state it was given. The supervisor shell sends the messages and does its side
jobs from the result: metrics, announcers following the config, membership
started when peers appear.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeAlias

from supervisor.messages import (
    AllocationDone,
    AnnouncementsChanged,
    ConfigLoaded,
    ConfigRejected,
    MembersChanged,
    ToWorker,
    ViewChanged,
)
from supervisor.roles import Mode, Role
from supervisor.supervising.state import RoutedState, allocation_for_membership, for_allocator, for_membership

# The worker messages that change what the supervisor routes (the rest, heartbeats,
# metrics, status reports and failures, concern the worker's own slot).
Routable: TypeAlias = ConfigLoaded | ConfigRejected | AllocationDone | MembersChanged | AnnouncementsChanged


@dataclass(frozen=True, slots=True, kw_only=True)
class Routed:
    """`route`'s answer: the new state, the messages to send in order, and what was newly accepted."""

    state: RoutedState
    outgoing: tuple[tuple[Role, ToWorker], ...] = ()
    config: ConfigLoaded | None = None  # a new config, renumbered, routed to the allocator
    allocation: AllocationDone | None = None  # a new allocation, now the one in force


def route(state: RoutedState, message: Routable) -> Routed:
    new = _copy(state)
    match message:
        case ConfigLoaded():
            routed = new.accept_config(message)
            if routed is None:
                return Routed(state=new)
            return Routed(state=new, outgoing=((Role.ALLOCATOR, for_allocator(routed)),
                                               (Role.MEMBERSHIP, for_membership(routed))),
                          config=routed)
        case ConfigRejected():
            new.reject_config(message)
            return Routed(state=new)
        case AllocationDone():
            if not new.accept_allocation(message):
                return Routed(state=new)
            return Routed(state=new, outgoing=((Role.MEMBERSHIP, allocation_for_membership(message)), *_view(new)),
                          allocation=message)
        case MembersChanged():
            seen = (new.alive(), new.members.changed_at if new.members is not None else None)
            new.members = message
            # Membership reports every second (its table's ages, for /status); the
            # announcers' view holds only who is alive and since when, so an
            # unchanged one is not sent again (1,000 Services: ~146 KB and a re-plan
            # per announcer per second).
            if (message.alive, message.changed_at) == seen:
                return Routed(state=new)
            return Routed(state=new, outgoing=_view(new))
        case AnnouncementsChanged():
            new.announced[message.worker] = message
            # The speaker's watcher writes ServiceL2Status and the nodeAssigned /
            # announceFailed Events from what the announcers really do.
            # (Standalone has no one to tell; the controller has no announcers.)
            kubernetes = new.mode == Mode.KUBERNETES
            return Routed(state=new, outgoing=((Role.WATCHER, message),) if kubernetes else ())


def _view(state: RoutedState) -> tuple[tuple[Role, ToWorker], ...]:
    view = state.view()
    return () if view is None else ((Role.ANNOUNCER, ViewChanged(view=view)),)


def _copy(state: RoutedState) -> RoutedState:
    # The messages and configs inside are frozen; only the containers need copies.
    return dataclasses.replace(state, in_flight=dict(state.in_flight), statuses=dict(state.statuses),
                               announced=dict(state.announced))
