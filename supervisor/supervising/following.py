"""What to do with one announcer process when a new config arrives. Pure.

The supervisor re-decides on every accepted config which announcers run
(`supervisor.announcing.enabling`). For each protocol, this table turns the
decision, the worker's lifecycle state and whether its AnnouncerConfig
changed into one step; the supervisor's shell carries it out.

    enabled?  worker                      AnnouncerConfig   step
    yes       none yet                    -                 START    spawn a new worker
    yes       FATAL (FAILED)              changed           REVIVE   fresh budget, spawn
    yes       FATAL (FAILED)              same              KEEP     FAILED until it changes
    yes       EXITED, no process          -                 START    (was disabled) fresh budget, spawn
    yes       STOPPING                    -                 RESTART  start again once it exited
    yes       STARTING / RUNNING          changed           RESTART  graceful stop, then spawn: start()
                                                                     must see the new settings
    yes       STARTING / RUNNING/ BACKOFF same              KEEP     (BACKOFF respawns with the new spec)
    no        FATAL (FAILED)              -                 CLEAR    not failed any more, stays stopped
    no        STARTING / RUNNING/ BACKOFF -                 STOP     graceful stop (withdraw), stays stopped
    no        anything else, or none      -                 KEEP
"""

from __future__ import annotations

import enum

from supervisor.supervising.lifecycle import State


class Step(enum.Enum):
    START = "start"
    RESTART = "restart"
    STOP = "stop"
    REVIVE = "revive"
    CLEAR = "clear"
    KEEP = "keep"


def step(*, enabled: bool, state: State | None, alive: bool, changed: bool) -> Step:
    """The step for one announcer; `state` None = no worker yet, `alive` = its process exists."""
    if not enabled:
        if state is State.FATAL:
            return Step.CLEAR
        if state in (State.STARTING, State.RUNNING, State.BACKOFF):
            return Step.STOP
        return Step.KEEP
    if state is None:
        return Step.START
    if state is State.FATAL:
        return Step.REVIVE if changed else Step.KEEP
    if state is State.EXITED and not alive:
        return Step.START
    if state is State.STOPPING:
        return Step.RESTART
    if changed and state in (State.STARTING, State.RUNNING):
        return Step.RESTART
    return Step.KEEP
