"""The last full state the supervisor routed, so a restarted worker catches up at once.

The supervisor is a router with a memory: it keeps the last accepted config,
the allocation computed for it, the membership view and every worker's last
status. When a worker comes back after a crash it gets, immediately, exactly
what it would have accumulated (`replay`): the allocator the config, the
membership worker the config and the allocation, an announcer the current
`AnnouncerView`, a Kubernetes watcher what each announcer really announces.
No worker keeps state the supervisor cannot rebuild.

Generations are the supervisor's own: a restarted watcher counts from 1 again,
so `accept_config` renumbers, and an unchanged config (the watcher re-reading
the file after its restart) routes nothing at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor.allocating.results import AllocationResult
from supervisor.announcing.api import AnnouncerView
from supervisor.config import parts
from supervisor.config.model import Config
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

# Worker roles (`Role`), by their short names: what each kind of worker is sent and replayed.
WATCHER, ALLOCATOR, MEMBERSHIP, ANNOUNCER = Role.WATCHER, Role.ALLOCATOR, Role.MEMBERSHIP, Role.ANNOUNCER

_NOTHING = Config()


def for_allocator(message: ConfigLoaded) -> ConfigLoaded:
    """`message` as the allocator role reads it (`config.parts`): no config at all when it carries the allocation.

    A Kubernetes watcher attaches the allocation (the controller's, or Service
    status for a speaker) and the allocator worker only passes it on; the
    standalone allocator reads the pools, Services and Namespaces. Neither
    reads the warnings (the supervisor shows them).
    """
    if message.allocation is not None:
        return dataclasses.replace(message, config=_NOTHING, warnings=())
    return dataclasses.replace(message, config=parts.for_allocator(message.config), warnings=())


def for_membership(message: ConfigLoaded) -> ConfigLoaded:
    """`message` as the membership worker reads it: the Nodes and the Settings (`config.parts`).

    The allocation reaches it on its own (`AllocationDone`), so a Kubernetes
    watcher's attached copy is dropped too; the Services are most of a big
    config, and each process that unpickles them holds its own copy (~3 MiB
    for 1,000, BENCHMARKS.md).
    """
    return dataclasses.replace(message, config=parts.for_membership(message.config), warnings=(), allocation=None)


def allocation_for_membership(message: AllocationDone) -> AllocationDone:
    """`message` with the assignments only: membership compares them with its peers' (consistency)."""
    result = message.result
    if not result.pending and not result.pools and not result.warnings and not result.problems:
        return message
    return dataclasses.replace(message, result=AllocationResult(assignments=result.assignments, pending={}, pools=()))


@dataclass(slots=True, kw_only=True)
class RoutedState:
    node_name: str
    mode: Mode = Mode.STANDALONE
    generation: int = 0
    loaded: ConfigLoaded | None = None
    # The last rejection since the last accepted config; None = not stale.
    rejected: ConfigRejected | None = None
    # Configs sent to the allocator whose AllocationDone has not come back yet.
    in_flight: dict[int, Config] = field(default_factory=dict)
    allocation: AllocationDone | None = None
    allocated_config: Config | None = None
    members: MembersChanged | None = None
    statuses: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # Each announcer worker's last real state (Kubernetes: for the watcher).
    announced: dict[str, AnnouncementsChanged] = field(default_factory=dict)

    def accept_config(self, message: ConfigLoaded) -> ConfigLoaded | None:
        """Record a new valid config; the message to route, or None when nothing changed."""
        self.rejected = None
        if self.loaded is not None and self.loaded.config == message.config:
            return None
        self.generation += 1
        renumbered = dataclasses.replace(message, generation=self.generation)
        self.loaded = renumbered
        self.in_flight[self.generation] = message.config
        return renumbered

    def reject_config(self, message: ConfigRejected) -> None:
        # The last good config stays in force; only the stale flag changes.
        self.rejected = message

    def accept_allocation(self, message: AllocationDone) -> bool:
        """Record the allocator's answer; False for one older than what we hold."""
        config = self.in_flight.get(message.generation)
        if config is None or (self.allocation is not None and message.generation < self.allocation.generation):
            return False
        for generation in [g for g in self.in_flight if g <= message.generation]:
            del self.in_flight[generation]
        attached = self.loaded.allocation if self.loaded is not None else None
        if attached is not None and self.loaded is not None and self.loaded.generation == message.generation \
                and attached == message.result:
            # A speaker's allocator passes on the assignments its watcher attached
            # to the config: keep that one copy, not a second one unpickled from
            # the allocator's answer (~1 MiB with 1,000 Services).
            message = dataclasses.replace(message, result=attached)
        self.allocation = message
        self.allocated_config = config
        return True

    @property
    def stale(self) -> bool:
        return self.rejected is not None

    def alive(self) -> frozenset[str]:
        """Live members; until the membership worker first reports, every configured node.

        Presuming the configured peers alive mirrors membership's startup grace:
        with "this node alone" a node that (re)starts would win every IP for
        the few ms before its first MembersChanged and send gratuitous ARP for
        them, pulling clients away from the real owner. Without Nodes in the
        config (a single node) that is this node alone.
        """
        if self.members is None:
            config = self.allocated_config
            return frozenset({self.node_name, *(n.name for n in config.nodes)} if config else {self.node_name})
        return self.members.alive

    def view(self) -> AnnouncerView | None:
        if self.allocation is None or self.allocated_config is None:
            return None
        result = self.allocation.result
        return AnnouncerView(
            node_name=self.node_name,
            mode=self.mode,
            config=parts.for_announcers(self.allocated_config),
            assignments=tuple(result.assignments[key] for key in sorted(result.assignments)),
            members=self.alive(),
            generation=self.allocation.generation,
            members_changed_at=self.members.changed_at if self.members is not None else None,
        )

    def replay(self, role: Role) -> list[ToWorker]:
        """What a (re)started worker of `role` must receive to be up to date."""
        messages: list[ToWorker] = []
        if role == ALLOCATOR and self.loaded is not None:
            messages.append(for_allocator(self.loaded))
        elif role == MEMBERSHIP:
            if self.loaded is not None:
                messages.append(for_membership(self.loaded))
            if self.allocation is not None:
                messages.append(allocation_for_membership(self.allocation))
        elif role == ANNOUNCER:
            view = self.view()
            if view is not None:
                messages.append(ViewChanged(view=view))
        elif role == WATCHER and self.mode == Mode.KUBERNETES:
            messages.extend(self.announced[worker] for worker in sorted(self.announced))
        return messages
