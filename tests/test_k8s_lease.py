"""Leader election on a coordination.k8s.io/v1 Lease: one writer among replicas."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.controller import ControllerLoop
from supervisor.kubernetes.leaderelection import LeaderElector, LeaseTimings
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import FAST_LEASE, controller_options, ingress, pool, service
from tests.runtime_helpers import wait_for


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.2) as server:
        server.create(pool("big", "10.0.0.0/24"))
        yield server


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(api: FakeApiServer, identity: str, clock: FakeClock) -> LeaderElector:
    client = RawClient.connect(host=api.url, user_agent=f"metalloid/{identity}")
    timings = LeaseTimings(lease_duration=15, renew_deadline=10, retry_period=2)
    return LeaderElector(
        client, namespace="metallb-system", name="lease", identity=identity, timings=timings, clock=clock
    )


def test_second_candidate_waits_for_expiry_measured_on_its_own_clock(api: FakeApiServer) -> None:
    clock = FakeClock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.step() is True
    assert b.step() is False
    clock.now += 14  # a stopped renewing; not yet lease_duration since b saw the record
    assert a.is_leader() is False  # a's own renew deadline (10 s) has passed
    assert b.step() is False
    clock.now += 2
    assert b.step() is True
    lease = api.get("Lease", "metallb-system", "lease")["spec"]
    assert lease["holderIdentity"] == "b" and lease["leaseTransitions"] == 1
    # a comes back: b's record is fresh to a, so a waits.
    assert a.step() is False


def test_renewal_keeps_leadership_and_release_hands_over(api: FakeApiServer) -> None:
    clock = FakeClock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    for _ in range(10):
        assert a.step() is True
        clock.now += 2
        assert b.step() is False
    a.release()
    assert a.is_leader() is False
    assert b.step() is True


def test_racing_candidates_one_wins(api: FakeApiServer) -> None:
    clock = FakeClock()
    candidates = [elector(api, f"c{i}", clock) for i in range(4)]
    results: list[bool] = []
    barrier = threading.Barrier(len(candidates))

    def attempt(e: LeaderElector) -> None:
        barrier.wait()
        results.append(e.step())

    threads = [threading.Thread(target=attempt, args=(e,)) for e in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_bad_timings_are_an_error_not_an_exit() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaseTimings(lease_duration=1, renew_deadline=2, retry_period=0.5)


def test_two_controllers_never_both_write(api: FakeApiServer) -> None:
    """Leadership intervals never overlap, and every write comes from the leader of its moment."""
    intervals: dict[str, list[list[float]]] = {"a": [], "b": []}
    lock = threading.Lock()

    def track(identity: str, loop: ControllerLoop) -> None:
        def changed(leader: bool) -> None:
            with lock:
                if leader:
                    intervals[identity].append([time.monotonic(), float("inf")])
                else:
                    intervals[identity][-1][1] = time.monotonic()
            original(leader)

        original = loop.core.elector.on_change
        loop.core.elector.on_change = changed

    clients = {i: RawClient.connect(host=api.url, user_agent=f"metalloid/{i}") for i in "ab"}
    loops = {i: ControllerLoop(clients[i], controller_options(i)) for i in "ab"}
    for identity, loop in loops.items():
        track(identity, loop)
        loop.start()
    try:
        for n in range(5):
            api.create(service(f"first{n}"))
        wait_for(lambda: all(ingress(api, f"first{n}") for n in range(5)))
        leader = next(i for i in "ab" if loops[i].core.elector.is_leader())
        other = "b" if leader == "a" else "a"
        # Cut the leader off from the API: it must stop before the other takes over.
        api.faults.blocked_agents.add(f"metalloid/{leader}")
        for n in range(5):
            api.create(service(f"second{n}"))
        wait_for(lambda: all(ingress(api, f"second{n}") for n in range(5)), timeout=10)
        assert loops[other].core.elector.is_leader()
        api.faults.blocked_agents.clear()
        for n in range(3):
            api.create(service(f"third{n}"))
        wait_for(lambda: all(ingress(api, f"third{n}") for n in range(3)), timeout=10)
    finally:
        for loop in loops.values():
            loop.stop()
    spans = sorted((start, end, who) for who, found in intervals.items() for start, end in found)
    for (_, end, who), (start, _, next_who) in itertools.pairwise(spans):
        assert end <= start, f"{who} still led at {end} when {next_who} took over at {start}"
    writes = [r for r in api.writes() if "/leases" not in r.path and r.code < 300]
    assert {r.agent.split("/")[-1] for r in writes} == {"a", "b"}  # each led once
    for request in writes:
        who = request.agent.split("/")[-1]
        assert any(start <= request.at <= end for start, end in intervals[who]), f"write outside lease: {request}"
    assert FAST_LEASE.renew_deadline < FAST_LEASE.lease_duration
