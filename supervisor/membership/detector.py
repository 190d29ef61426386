"""The failure detector: who is alive, from heartbeats and the passage of time.

Pure: time is passed in (`now`, monotonic seconds), packets arrive already
decoded, and every change comes back as a `Transition` value, so the rules are
tested with a fake clock and no sockets (tests/test_membership_detector.py).

The rules (docs/failover.md explains the numbers):
- A peer is alive after `rise` accepted heartbeats in a row (each within
  its allowed silence of the previous), dead when nothing valid arrived for
  its allowed silence, and dead at once when it says LEAVING. The allowed
  silence is `dead_after_seconds` when set, otherwise 3 intervals plus a
  margin learnt from that peer's lateness (`deadline.py`).
- Replays are refused: a packet must be newer, by (incarnation, seq), than
  everything accepted from that peer (`codec.ReplayWindow`).
- Proof of life: a packet counts (as a heartbeat, or as LEAVING) only if it
  echoes *our current* incarnation, which did not exist before we started, so
  nothing recorded before our last restart can keep a dead peer alive. A fresh
  packet that echoes something else is still recorded in the replay window (so
  we echo the peer's incarnation back, and it proves itself one interval
  later) but dropped as `stale_echo`.
- Anti-flap on a starved host: silence counts only while *our own* loop was
  able to run. When the gap between two ticks, minus the CPU time our loop
  spent in it (`busy_seconds`: receiving, however much there was to receive),
  exceeds `stall_after`, we were not scheduled (CPU starvation, a paused VM,
  SIGSTOP); that unobserved part is added to every live peer's deadline
  instead of failing everyone over. Our own receive work is never forgiven: a
  flood that keeps us busy does not extend anyone's deadline. The worker also
  drains the socket before it ticks, so heartbeats that queued up in the
  kernel during the stall are counted first.
- At start, every configured peer is presumed alive until a startup grace ends
  (2 x the longest deadline): a node that just started must not grab every IP for the
  ~100 ms it takes to hear its peers. Peers added by a later config start dead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from supervisor.membership.codec import Dropped, DropReason, Heartbeat, PacketType, ReplayWindow
from supervisor.membership.deadline import PRESSURE_HOLD_SECONDS, DeadlinePolicy, Jitter


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorSettings:
    interval_seconds: float = 0.1
    # None (the default): adaptive, 3 intervals plus a margin from the peer's
    # measured lateness (deadline.py). A number: that fixed silence.
    dead_after_seconds: float | None = None
    # Heartbeats in a row a dead peer needs to count as alive again.
    rise: int = 2
    # None: 2 x the longest deadline (0.6 s with the defaults): hearing a peer
    # takes a few intervals, more on a host busy starting up.
    startup_grace_seconds: float | None = None
    # None: 2 x interval_seconds. A loop that sleeps at most one interval and
    # wakes later than twice that was not running.
    stall_after_seconds: float | None = None

    @property
    def policy(self) -> DeadlinePolicy:
        return DeadlinePolicy(interval_seconds=self.interval_seconds, fixed_seconds=self.dead_after_seconds)

    @property
    def startup_grace(self) -> float:
        g = self.startup_grace_seconds
        return 2 * self.policy.longest if g is None else g

    @property
    def stall_after(self) -> float:
        s = self.stall_after_seconds
        return 2 * self.interval_seconds if s is None else s


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """A peer changed state. `silence_seconds`: for a deadline death, time since it was last heard."""

    peer: str
    alive: bool
    reason: str  # "heartbeat" | "deadline" | "leaving" | "removed"
    silence_seconds: float | None = None


@dataclass(slots=True, kw_only=True)
class PeerState:
    alive: bool
    heard_at: float | None = None
    deadline: float = math.inf
    streak: int = 0
    # Heartbeats have spoken for this peer at least once since we started: it
    # rose (or was heard during the startup grace), or it said LEAVING. From
    # then on only heartbeats judge it (see fallback.py).
    confirmed: bool = False
    # Its recent lateness, and the silence it is allowed now (deadline.py).
    jitter: Jitter = field(default_factory=Jitter)
    allowed: float = 0.0


class FailureDetector:
    """Liveness of the configured peers as seen from `node_name` (always alive itself)."""

    def __init__(
        self, settings: DetectorSettings, *, node_name: str, incarnation: int, peers: frozenset[str], now: float
    ) -> None:
        self.settings = settings
        self._policy = settings.policy
        self.node_name = node_name
        # Ours, as the peers must echo it (the worker updates it if it re-incarnates).
        self.incarnation = incarnation
        self.replay = ReplayWindow()
        self.stalls = 0
        self.stalled_seconds = 0.0
        # Until when a flood on our socket puts every peer on the longest deadline.
        self._pressure_until = -math.inf
        self._last_tick = now
        grace = now + settings.startup_grace
        self._peers: dict[str, PeerState] = {
            p: PeerState(alive=True, deadline=grace, allowed=self._policy.shortest)
            for p in sorted(peers) if p != node_name
        }
        # No live peer's deadline is earlier than this (a lower bound, exact
        # after each tick): a tick before it has nothing to expire and skips
        # the O(peers) pass, and it is when the loop must wake next. Deadlines
        # mostly grow while heartbeats arrive, so it stays valid without a pass
        # per heartbeat; one set earlier (a peer rising, first heard during
        # the startup grace, a learnt margin that shrank) lowers it.
        self._earliest = grace if self._peers else math.inf
        # Grows whenever a peer's `alive` or `confirmed` flips or the peer set
        # changes: what the worker's judgements (fallback.judge_all) and the
        # socket filter's strict set are computed from, so it recomputes
        # those only then, not on every loop turn.
        self.version = 0

    def retime(self, settings: DetectorSettings) -> None:
        """New timings from a reload: each peer's next deadline follows them."""
        self.settings, self._policy = settings, settings.policy

    # -- queries ----------------------------------------------------------------

    def alive(self) -> frozenset[str]:
        return frozenset([self.node_name, *(p for p, s in self._peers.items() if s.alive)])

    def peers(self) -> dict[str, PeerState]:
        return dict(self._peers)

    def isolated(self) -> bool:
        """True when there are peers and none of them is alive: firewall or partition."""
        return bool(self._peers) and not any(s.alive for s in self._peers.values())

    def next_deadline(self) -> float:
        """No live peer expires before this (inf: none alive); a tick at that time is exact again.

        A lower bound, not always a deadline: a peer heard since the last
        tick has moved its own deadline later, so waking here may find
        nothing to expire (at most once per `dead_after` in steady state).
        """
        return self._earliest

    def ever_heard(self, peer: str) -> bool:
        state = self._peers.get(peer)
        return state is not None and state.heard_at is not None

    # -- inputs -----------------------------------------------------------------

    def set_peers(self, peers: frozenset[str], now: float) -> list[Transition]:
        """A new config: removed peers vanish, new peers start dead (never heard)."""
        changes: list[Transition] = []
        wanted = {p for p in peers if p != self.node_name}
        for gone in sorted(set(self._peers) - wanted):
            if self._peers.pop(gone).alive:
                changes.append(Transition(peer=gone, alive=False, reason="removed"))
            self.replay.forget(gone)
            self.version += 1
        for new in sorted(wanted - set(self._peers)):
            self._peers[new] = PeerState(alive=False, allowed=self._policy.shortest)
            self.version += 1
        return changes

    def receive(self, hb: Heartbeat, now: float) -> tuple[Dropped | None, list[Transition]]:
        """An authenticated packet from a configured peer: replay-check it, check its proof of life, apply it.

        `now` is when the packet arrived (the kernel's stamp, transport.recv),
        which may be earlier than the read: its lateness and the peer's next
        deadline count from then.
        """
        state = self._peers.get(hb.sender)
        if state is None:
            # decode() checked the sender against the same peer set; a race with
            # a config change is the only way here, and ignoring it is right.
            return None, []
        dropped = self.replay.accept(hb.sender, hb.incarnation, hb.seq)
        if dropped is not None:
            return dropped, []
        if hb.echo_incarnation != self.incarnation:
            detail = f"echoes incarnation {hb.echo_incarnation}, ours is {self.incarnation}"
            return Dropped(reason=DropReason.STALE_ECHO, detail=detail), []
        if hb.type is PacketType.LEAVING:  # (hb.leaving, without a property call per datagram)
            state.heard_at, state.streak, state.deadline = now, 0, math.inf
            if not state.confirmed or state.alive:
                self.version += 1
            state.confirmed = True
            state.jitter.forget()
            if state.alive:
                state.alive = False
                return None, [Transition(peer=hb.sender, alive=False, reason="leaving")]
            return None, []
        in_a_row = state.heard_at is not None and now - state.heard_at <= state.allowed
        state.streak = state.streak + 1 if in_a_row else 1
        state.heard_at = now
        peak = state.jitter.heard(self._policy, incarnation=hb.incarnation, seq=hb.seq, now=now)
        state.allowed = self._policy.longest if now < self._pressure_until else self._policy.allowed(peak)
        state.deadline = now + state.allowed
        if not state.alive and state.streak < self.settings.rise:
            # Not yet risen: keep it dead, but do not let it expire while it talks.
            state.deadline = math.inf
            return None, []
        if state.deadline < self._earliest:
            # Earlier than the bound: a peer rising, first heard during the startup
            # grace, or its learnt margin shrank (deadline.py: the peak decays).
            self._earliest = state.deadline
        if not state.alive:
            state.alive = state.confirmed = True
            self.version += 1
            return None, [Transition(peer=hb.sender, alive=True, reason="heartbeat")]
        if not state.confirmed:
            state.confirmed = True  # heard during the startup grace
            self.version += 1
        return None, []

    def pressure(self, now: float) -> None:
        """Our receive turn was cut short by its budget: a flood reached the loop.

        Real heartbeats may be queued behind the junk or dropped with it, so
        every live peer gets the longest deadline (from its last heartbeat)
        until PRESSURE_HOLD_SECONDS after the last such turn. Our receive work
        is still not a stall (see `tick`): a dead peer is detected after that
        longest deadline, as before issue 16 with the fixed 0.35 s.
        """
        self._pressure_until = now + PRESSURE_HOLD_SECONDS
        longest = self._policy.longest
        for state in self._peers.values():
            if state.alive and state.heard_at is not None:
                state.allowed = max(state.allowed, longest)
                state.deadline = max(state.deadline, state.heard_at + longest)

    def tick(self, now: float, busy_seconds: float = 0.0) -> list[Transition]:
        """Advance time: apply the stall rule, then declare overdue peers dead.

        `busy_seconds`: CPU time our loop used since the last tick. That part
        of the gap was observed (we were running), so it is never forgiven.
        """
        gap = now - self._last_tick - max(0.0, busy_seconds)
        self._last_tick = now
        if gap > self.settings.stall_after:
            self._forgive_stall(gap, now)
        changes: list[Transition] = []
        if now < self._earliest:
            return changes  # nobody can be overdue: most ticks, with many peers
        earliest = math.inf
        for peer, state in self._peers.items():
            if not state.alive:
                continue
            if now >= state.deadline:
                state.alive, state.deadline, state.streak = False, math.inf, 0
                state.jitter.forget()
                silence = None if state.heard_at is None else now - state.heard_at
                changes.append(Transition(peer=peer, alive=False, reason="deadline", silence_seconds=silence))
            else:
                earliest = min(earliest, state.deadline)
        self._earliest = earliest
        self.version += len(changes)
        return changes

    def _forgive_stall(self, gap: float, now: float) -> None:
        # We were off the CPU for `gap`; only one interval of it was ours to sleep.
        # The rest was not observed, so it must not count as the peers' silence.
        unobserved = gap - self.settings.interval_seconds
        self.stalls += 1
        self.stalled_seconds += unobserved
        for state in self._peers.values():
            if state.alive:
                cap = now + max(state.allowed, self._policy.shortest)
                state.deadline = max(state.deadline, min(state.deadline + unobserved, cap))
        # Deadlines only moved later, so the bound still holds; the pass below makes it exact.
