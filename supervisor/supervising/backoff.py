"""The restart policy: how long to wait before a restart, and when to give up.

Two rules, kept apart from the lifecycle table so both stay testable with an
injected clock:

- Delay: tenacity's `wait_exponential_jitter`. The first restart comes almost
  at once (a kill -9 must heal within a second), each consecutive failure
  doubles the wait up to `max_seconds`, and jitter keeps a fleet of nodes that
  crash together from restarting in lockstep. A worker that stayed up for
  `reset_after_seconds` earned a fresh start: its next failure is "first" again.
- Budget: at most `budget` restarts per worker in any `window_seconds` (ExaBGP's
  rate limit per time window). Past that the worker is FATAL and the run exits
  non-zero, so systemd or the kubelet — which can do more than we can, like
  reschedule — takes over instead of us flapping forever.

What neither rule catches: a worker dying every 30 s or so never spends the
budget (its delays alone keep it under the window's rate) and, dying just
before `reset_after_seconds`, sits at the maximum delay forever. Like
supervisord and systemd we keep restarting it (the budget alone decides an
exit), but it is made visible: `flapping` is true, and every failure logs
`worker.flapping` at warning, while it restarted `flapping_restarts` times in
`flapping_window_seconds`.

No sleeping happens here: `record_failure` returns a number or None.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

# The first restart waits 50-100 ms: long enough not to spin on a worker that
# dies instantly, short enough that kill -9 → RUNNING stays under a second.
DEFAULT_MULTIPLIER = 0.05
DEFAULT_JITTER = 0.05
DEFAULT_MAX = 10.0
# 10 restarts in 60 s: a worker dying on every message still gets ~25 s of
# doubling delays before we give up; a rare crash never spends the budget.
DEFAULT_BUDGET = 10
DEFAULT_WINDOW = 60.0
DEFAULT_RESET_AFTER = 30.0
# 10 restarts in 10 minutes: a worker crashing every 30-60 s, which the budget
# lets through, is flapping; one rare crash in a day never is.
DEFAULT_FLAPPING_RESTARTS = 10
DEFAULT_FLAPPING_WINDOW = 600.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffSettings:
    multiplier: float = DEFAULT_MULTIPLIER
    jitter: float = DEFAULT_JITTER
    max_seconds: float = DEFAULT_MAX
    budget: int = DEFAULT_BUDGET
    window_seconds: float = DEFAULT_WINDOW
    reset_after_seconds: float = DEFAULT_RESET_AFTER
    flapping_restarts: int = DEFAULT_FLAPPING_RESTARTS
    flapping_window_seconds: float = DEFAULT_FLAPPING_WINDOW


class RestartPolicy:
    """One worker's restart history. `clock` is injected (time.monotonic in the shell)."""

    def __init__(
        self, settings: BackoffSettings | None = None, *, clock: Callable[[], float], name: str = "worker"
    ) -> None:
        self.settings = settings or BackoffSettings()
        self._clock = clock
        self.name = name
        self._wait = tenacity.wait_exponential_jitter(
            multiplier=self.settings.multiplier, max=self.settings.max_seconds, jitter=self.settings.jitter
        )
        self._failures: collections.deque[float] = collections.deque()
        self._history: collections.deque[float] = collections.deque()  # failures in the flapping window
        self._consecutive = 0

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def restarts_in_window(self) -> int:
        self._forget_old(self._clock())
        return len(self._failures)

    def restarts_in_flapping_window(self) -> int:
        now = self._clock()
        while self._history and now - self._history[0] >= self.settings.flapping_window_seconds:
            self._history.popleft()
        return len(self._history)

    @property
    def flapping(self) -> bool:
        """Restarted `flapping_restarts` times within `flapping_window_seconds`; not a reason to exit."""
        return self.restarts_in_flapping_window() >= self.settings.flapping_restarts

    def record_failure(self, *, ran_for: float) -> float | None:
        """A worker died after running `ran_for` seconds: the delay before its restart.

        Returns None when the budget for the window is spent (the worker is FATAL).
        """
        now = self._clock()
        self._forget_old(now)
        if len(self._failures) >= self.settings.budget:
            return None
        self._failures.append(now)
        if ran_for >= self.settings.reset_after_seconds:
            # It was healthy for a long while: this failure is a new story.
            self._consecutive = 0
        self._consecutive += 1
        delay = float(self._wait(_attempt(self._consecutive)))
        self._history.append(now)
        if self.flapping:
            log.warning("worker.flapping worker=%s restarts=%d window=%gs retry_in=%.3f",
                        self.name, len(self._history), self.settings.flapping_window_seconds, delay)  # fmt: skip
        return delay

    def _forget_old(self, now: float) -> None:
        while self._failures and now - self._failures[0] >= self.settings.window_seconds:
            self._failures.popleft()


def _attempt(number: int) -> tenacity.RetryCallState:
    # tenacity's wait strategies read only `attempt_number` from the call state.
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = number
    return state
