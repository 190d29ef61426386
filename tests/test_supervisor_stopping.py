"""The supervisor's shutdown phases as a pure state machine (supervising/stopping.py)."""

from __future__ import annotations

from supervisor.supervising.stopping import HANDOVER_OVERLAP_SECONDS, Seen, StopActions, StopPhase, advance, begin

GRACE = 4.0


def seen(now: float, *, membership: bool = False, announcers: bool = False, everything: bool = False,
         members_known: bool = True) -> Seen:
    return Seen(now=now, membership_gone=membership, announcers_gone=announcers, all_gone=everything,
                members_known=members_known)


def test_membership_leaves_then_the_announcers_overlap_then_withdraw_then_everyone_stops() -> None:
    state = begin(10.0)
    assert state.phase is StopPhase.LEAVING
    state, actions = advance(state, seen(10.05), grace_seconds=GRACE)
    assert state.phase is StopPhase.LEAVING and actions == StopActions()  # membership still sending LEAVING
    state, actions = advance(state, seen(10.1, membership=True), grace_seconds=GRACE)
    assert state.phase is StopPhase.OVERLAP and state.announcers_at == 10.1 + HANDOVER_OVERLAP_SECONDS
    assert actions == StopActions()  # the announcers keep answering while the peers take over
    state, actions = advance(state, seen(10.1 + HANDOVER_OVERLAP_SECONDS, membership=True), grace_seconds=GRACE)
    assert state.phase is StopPhase.WITHDRAWING and actions == StopActions(stop_announcers=True)
    state, actions = advance(state, seen(10.4, membership=True, announcers=True), grace_seconds=GRACE)
    assert state.phase is StopPhase.STOPPING_ALL and actions.stop_all and not actions.done
    state, actions = advance(state, seen(10.5, membership=True, announcers=True, everything=True), grace_seconds=GRACE)
    assert actions.done and not actions.kill and not actions.stop_all  # everyone is told once


def test_without_a_membership_view_there_is_no_overlap() -> None:
    state, actions = advance(begin(0.0), seen(0.1, membership=True, members_known=False), grace_seconds=GRACE)
    assert state.phase is StopPhase.WITHDRAWING and state.announcers_at == 0.1 and actions.stop_announcers


def test_each_phase_ends_on_its_deadline_when_a_worker_is_stuck() -> None:
    state, actions = advance(begin(0.0), seen(GRACE / 4 + 0.01), grace_seconds=GRACE)  # membership stuck
    assert state.phase is StopPhase.OVERLAP
    state, actions = advance(state, seen(GRACE / 2 + 0.01), grace_seconds=GRACE)  # announcers stuck
    assert state.phase is StopPhase.STOPPING_ALL and actions.stop_announcers and actions.stop_all
    state, actions = advance(state, seen(GRACE + 0.01), grace_seconds=GRACE)
    assert actions.kill and not actions.done


def test_announcers_gone_early_skip_to_stopping_everyone() -> None:
    state, _ = advance(begin(0.0), seen(0.05, membership=True), grace_seconds=GRACE)
    state, actions = advance(state, seen(0.06, membership=True, announcers=True), grace_seconds=GRACE)
    assert state.phase is StopPhase.STOPPING_ALL and actions.stop_all and not actions.stop_announcers
