"""The supervisor's shutdown as an explicit state machine (pure: no processes, no clock).

A handover with no gap: membership leaves first (it sends LEAVING, so the
peers take over at once) while the announcers keep answering with the last
view; they withdraw HANDOVER_OVERLAP_SECONDS later, once the new owner's
gratuitous ARP has moved the clients; then everything else stops. Each phase
also ends on a deadline, a fraction of the grace period, so one stuck worker
cannot hold the others; past the whole grace period what is left is killed.

    LEAVING ── membership gone, or grace/4 ──▶ OVERLAP
    OVERLAP ── the overlap has passed ──▶ WITHDRAWING   (announcers told to stop)
    OVERLAP, WITHDRAWING ── announcers gone, or grace/2 ──▶ STOPPING_ALL   (everyone told to stop)

`advance` takes the phase and what the supervisor sees of its workers and
returns the next phase and what to do now; the supervisor does it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

# On SIGTERM the announcers keep answering this long after LEAVING went out:
# the peers need a few ms (LEAVING -> their supervisor -> their announcer ->
# gratuitous ARP) to take over, and withdrawing before that is a gap.
HANDOVER_OVERLAP_SECONDS = 0.15


class StopPhase(enum.Enum):
    LEAVING = "leaving"  # membership told to stop; announcers still answer
    OVERLAP = "overlap"  # membership gone; announcers answer until `announcers_at`
    WITHDRAWING = "withdrawing"  # announcers told to stop
    STOPPING_ALL = "stopping-all"  # every worker told to stop


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopping:
    phase: StopPhase
    since: float
    announcers_at: float | None = None  # when the announcers are told to stop (set on leaving LEAVING)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """What the supervisor sees of its workers at `now`."""

    now: float
    membership_gone: bool
    announcers_gone: bool
    all_gone: bool
    members_known: bool  # membership reported at least once: peers exist to take over


@dataclass(frozen=True, slots=True, kw_only=True)
class StopActions:
    stop_announcers: bool = False  # (again: stopping a worker already stopping does nothing)
    stop_all: bool = False
    done: bool = False  # every worker is gone: exit
    kill: bool = False  # the grace period is over: kill what is left


def begin(now: float) -> Stopping:
    """Shutdown starts: the supervisor tells membership to stop."""
    return Stopping(phase=StopPhase.LEAVING, since=now)


def advance(state: Stopping, seen: Seen, *, grace_seconds: float,
            overlap_seconds: float = HANDOVER_OVERLAP_SECONDS) -> tuple[Stopping, StopActions]:
    elapsed = seen.now - state.since
    if state.phase is StopPhase.LEAVING and (seen.membership_gone or elapsed > grace_seconds / 4):
        # Without a membership view there is no peer to hand over to: no overlap.
        state = replace(state, phase=StopPhase.OVERLAP,
                        announcers_at=seen.now + (overlap_seconds if seen.members_known else 0.0))
    stop_announcers = state.announcers_at is not None and seen.now >= state.announcers_at
    if stop_announcers and state.phase is StopPhase.OVERLAP:
        state = replace(state, phase=StopPhase.WITHDRAWING)
    stop_all = state.phase in (StopPhase.OVERLAP, StopPhase.WITHDRAWING) and (
        seen.announcers_gone or elapsed > grace_seconds / 2)
    if stop_all:
        state = replace(state, phase=StopPhase.STOPPING_ALL)
    return state, StopActions(stop_announcers=stop_announcers, stop_all=stop_all, done=seen.all_gone,
                              kill=not seen.all_gone and elapsed > grace_seconds)
