"""Who counts as alive, and on what basis: heartbeats, or Kubernetes Node readiness.

When the heartbeat port is firewalled (or the peers' heartbeats never reach
us), every peer looks dead and an isolated node wins every election: a split
brain, every node answering ARP. In Kubernetes mode there is a second, slower
signal, the Node's Ready condition, so this module degrades to it:

- a peer heartbeats have spoken for since this worker started (`confirmed`:
  it rose, was heard during the startup grace, or said LEAVING) is judged by
  heartbeats only, and fails over in well under a second;
- a peer never confirmed is alive while the API says its Node is Ready and a
  speaker runs there (`vouched`): the election stays single-owner, and it
  fails over at Kubernetes' speed (Node NotReady, ~40 s by default);
- during the startup grace an unconfirmed peer is presumed alive as before.

Standalone mode has no second signal: an unconfirmed, silent peer is dead, the
isolation alarm is what catches a firewall there (docs/failover.md).

A peer that has been heard once but has not risen yet (one heartbeat, the
second not yet in) stays on the fallback, so hearing a peer for the first
time never flips it dead for one interval.

Pure: no sockets, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.membership.detector import PeerState

HEARTBEAT = "heartbeat"
STARTUP_GRACE = "startup-grace"
KUBERNETES_READY = "kubernetes-ready"


@dataclass(frozen=True, slots=True, kw_only=True)
class Judgement:
    """Whether a peer counts as alive for the election, and why (shown in /status)."""

    alive: bool
    basis: str  # HEARTBEAT | STARTUP_GRACE | KUBERNETES_READY


def judge(*, heartbeat_alive: bool, confirmed: bool, kubernetes: bool, vouched: bool) -> Judgement:
    """One peer: the detector's verdict, or the API's when heartbeats never spoke for it."""
    if confirmed:
        return Judgement(alive=heartbeat_alive, basis=HEARTBEAT)
    if heartbeat_alive:
        return Judgement(alive=True, basis=STARTUP_GRACE)
    if kubernetes:
        return Judgement(alive=vouched, basis=KUBERNETES_READY)
    return Judgement(alive=False, basis=HEARTBEAT)


def judge_all(
    peers: Mapping[str, PeerState], *, kubernetes: bool, vouched: frozenset[str]
) -> dict[str, Judgement]:
    """Every peer's judgement, by name."""
    return {
        name: judge(heartbeat_alive=s.alive, confirmed=s.confirmed, kubernetes=kubernetes, vouched=name in vouched)
        for name, s in peers.items()
    }
