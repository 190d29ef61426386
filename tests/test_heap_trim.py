"""The supervisor hands glibc's freed heap back once a burst of configs and reports has settled."""

from __future__ import annotations

from ipaddress import ip_address

from supervisor.allocating.results import AllocationResult, Assignment, PoolCounts
from supervisor.config.model import Config, ServiceKey
from supervisor.messages import AllocationDone, ConfigLoaded, MembersChanged, StatusReport
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising.memory import HeapTrimmer
from supervisor.supervising.settings import WorkerSettings
from supervisor.supervising.state import ALLOCATOR, ANNOUNCER, MEMBERSHIP
from supervisor.supervising.supervisor import Supervisor, SupervisorSettings, WorkerSpec


class Counted:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_a_burst_is_trimmed_once_after_its_last_message() -> None:
    trim = Counted()
    trimmer = HeapTrimmer(delay=0.5, longest=5.0, trim=trim)
    assert not trimmer.maybe(0.0), "nothing handled: nothing to trim"
    for at in (10.0, 10.2, 10.4):
        trimmer.touched(at)
    assert not trimmer.maybe(10.8), "0.4 s after the last message: still in the burst"
    assert trimmer.maybe(10.9) and trim.calls == 1
    assert not trimmer.maybe(20.0) and trim.calls == 1, "once per burst"


def test_a_constant_stream_is_trimmed_at_least_every_longest_seconds() -> None:
    trim = Counted()
    trimmer = HeapTrimmer(delay=0.5, longest=5.0, trim=trim)
    at, trimmed_at = 0.0, []
    while at < 12.0:
        trimmer.touched(at)
        if trimmer.maybe(at):
            trimmed_at.append(at)
        at = round(at + 0.25, 2)
    assert trimmed_at == [5.0, 10.25] and trim.calls == 2


def supervisor(clock: list[float]) -> Supervisor:
    specs = [WorkerSpec(name=name, role=role, entry="x:y", settings=WorkerSettings(name=name, node_name="n1"))
             for name, role in (("allocator", ALLOCATOR), ("membership", MEMBERSHIP), ("announcer-l2", ANNOUNCER))]
    sup = Supervisor(specs, SupervisorSettings(node_name="n1", mode="kubernetes"),
                     metrics=MetricsRegistry(process_metrics=False), clock=lambda: clock[0])
    sup.state.accept_config(ConfigLoaded(generation=1, config=Config(), origin="test"))
    return sup


def test_configs_allocations_and_announcer_reports_make_the_supervisor_trim_membership_ticks_do_not() -> None:
    clock = [100.0]
    sup = supervisor(clock)
    trim = Counted()
    sup._trimmer = HeapTrimmer(trim=trim)
    allocator, membership, announcer = sup._slots
    key = ServiceKey(namespace="default", name="web")
    result = AllocationResult(assignments={key: Assignment(service=key, ips=(ip_address("10.0.10.10"),),
                                                           pool="first-pool")},
                              pending={}, pools=(PoolCounts(pool="first-pool", total_v4=90, assigned_v4=1,
                                                                      total_v6=0, assigned_v6=0),))
    # Membership reports every second: neither its members nor its status is a reason to trim.
    sup._route(membership, MembersChanged(alive=frozenset({"n1"}), members=(), changed_at=1.0))
    sup._route(membership, StatusReport(worker="membership", payload={"members": []}))
    clock[0] = 200.0
    assert not sup._trimmer.maybe(clock[0]) and trim.calls == 0
    for message, slot in ((AllocationDone(generation=1, result=result), allocator),
                          (StatusReport(worker="announcer-l2", payload={"elections": []}), announcer)):
        clock[0] += 10.0
        sup._route(slot, message)
        assert not sup._trimmer.maybe(clock[0])
        assert sup._trimmer.maybe(clock[0] + 1.0), f"trimmed after {type(message).__name__}"
    assert trim.calls == 2
