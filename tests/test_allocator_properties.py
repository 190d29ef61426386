"""Hypothesis property tests of the allocator's invariants.

Random small configs (a few pools of a few short ranges, IPv4 and IPv6, with
every pool option; a dozen Services with every Service option, requested IPs
inside and outside pools, held IPs from status and from a state file) must
always give: no IP held twice except under a valid sharing key, every IP inside
its pool and of the right family, a fixed point when the output is fed back as
the previous state or pinned as status, assignments that survive adding a pool
and growing ranges, and counts equal to a recount.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections import defaultdict
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.allocating.allocator import allocate
from supervisor.allocating.results import AllocationResult
from supervisor.allocating.sharing import backend_key, ports_of
from supervisor.config.model import (
    AddressRange,
    Config,
    ExternalTrafficPolicy,
    IPAddress,
    IPAddressPool,
    IPFamilyPolicy,
    Service,
    ServiceAllocation,
    ServiceKey,
    ServicePort,
)

# METALLOID_PROPERTY_EXAMPLES=5000 for a long bug hunt; the default keeps CI fast.
SETTINGS = settings(
    max_examples=int(os.environ.get("METALLOID_PROPERTY_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
Previous = dict[ServiceKey, tuple[IPAddress, ...]]

# Every range lives in its own block, two /24s (or IPv6 /112s) apart, so ranges
# never overlap, may cross a .255/.0 boundary, and can grow without touching a neighbour.
BLOCKS = 12


def _ip(family: int, block: int, offset: int) -> IPAddress:
    if family == 4:
        return ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + block * 512 + offset)
    return ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd00::")) + block * 2**17 + offset)


def _range(family: int, block: int, start: int, size: int) -> AddressRange:
    first, last = _ip(family, block, start), _ip(family, block, start + size - 1)
    return AddressRange(first=first, last=last, text=f"{first}-{last}")


@st.composite
def configs(draw: st.DrawFn) -> Config:
    blocks = iter(draw(st.permutations(range(BLOCKS))))
    pools = []
    for p in range(draw(st.integers(1, 3))):
        ranges = []
        for _ in range(draw(st.integers(1, 3))):
            family = draw(st.sampled_from((4, 4, 6)))
            start = draw(st.sampled_from((0, 1, 250, 253)))
            ranges.append(_range(family, next(blocks), start, draw(st.integers(1, 6))))
        allocation = None
        if draw(st.booleans()):
            allocation = ServiceAllocation(
                priority=draw(st.none() | st.integers(0, 3)),
                namespaces=tuple(draw(st.sets(st.sampled_from(("a", "b")), max_size=1))),
            )
        pools.append(IPAddressPool(
            name=f"pool{p}",
            addresses=tuple(ranges),
            auto_assign=draw(st.booleans() | st.just(True)),
            avoid_buggy_ips=draw(st.booleans()),
            service_allocation=allocation,
        ))
    # Candidate IPs to ask for or to hold: inside ranges, just outside, and in no block at all.
    inside = [r.first for pool in pools for r in pool.addresses] + [r.last for pool in pools for r in pool.addresses]
    near = [ipaddress.ip_address(int(ip) + 1) for ip in inside]
    choices = st.sampled_from(inside + near + [ipaddress.IPv4Address("192.0.2.1")])
    services = []
    names = draw(st.lists(st.tuples(st.sampled_from(("a", "b")), st.integers(0, 30)), max_size=12, unique=True))
    for namespace, number in names:
        policy = draw(st.sampled_from(list(IPFamilyPolicy)))
        families = draw(st.sampled_from(((4,), (6,), (4, 6), (6, 4))))
        if policy is IPFamilyPolicy.SINGLE_STACK:
            families = families[:1]
        services.append(Service(
            namespace=namespace,
            name=f"s{number}",
            ports=tuple(ServicePort(port=p, protocol=proto)
                        for p, proto in draw(st.sets(st.sampled_from(((80, "TCP"), (443, "TCP"), (53, "UDP"))),
                                                     min_size=1))),
            selector=(("app", draw(st.sampled_from(("x", "y")))),),
            requested_ips=tuple(draw(st.lists(choices, max_size=2, unique=True)) if draw(st.integers(0, 3)) == 0
                                else ()),
            requested_pool=draw(st.none() | st.none() | st.sampled_from([p.name for p in pools] + ["nope"])),
            sharing_key=draw(st.sampled_from((None, "k1", "k2"))),
            ip_families=families,
            ip_family_policy=policy,
            external_traffic_policy=draw(st.sampled_from(list(ExternalTrafficPolicy))),
            status_ips=tuple(draw(st.lists(choices, max_size=2, unique=True)) if draw(st.integers(0, 3)) == 0
                             else ()),
        ))
    return Config(pools=tuple(pools), services=tuple(services))


previouses = st.dictionaries(
    st.builds(ServiceKey, namespace=st.sampled_from(("a", "b")), name=st.integers(0, 30).map(lambda n: f"s{n}")),
    st.lists(st.sampled_from([_ip(4, b, o) for b in range(BLOCKS) for o in (0, 1, 2, 250, 255, 256)]
                             + [_ip(6, b, o) for b in range(BLOCKS) for o in (0, 1, 2)]),
             min_size=1, max_size=2, unique=True).map(tuple),
    max_size=6,
)


def held(result: AllocationResult) -> dict[ServiceKey, tuple[IPAddress, ...]]:
    return {k: a.ips for k, a in result.assignments.items()}


@SETTINGS
@given(configs(), previouses)
def test_no_ip_held_twice_without_valid_sharing(config: Config, previous: Previous) -> None:
    result = allocate(config, previous)
    holders: dict[IPAddress, list[Service]] = defaultdict(list)
    for key, assignment in result.assignments.items():
        service = config.service(key)
        assert service is not None
        for ip in assignment.ips:
            holders[ip].append(service)
    for ip, services in holders.items():
        if len(services) == 1:
            continue
        keys = {s.sharing_key for s in services}
        assert len(keys) == 1 and None not in keys, (ip, services)
        assert len({backend_key(s) for s in services}) == 1, (ip, services)
        for i, one in enumerate(services):
            for other in services[i + 1:]:
                assert not ports_of(one) & ports_of(other), (ip, one.key, other.key)
        assert len({result.assignments[s.key].pool for s in services}) == 1


@SETTINGS
@given(configs(), previouses)
def test_every_ip_inside_its_pool_and_family(config: Config, previous: Previous) -> None:
    result = allocate(config, previous)
    lb = {s.key for s in config.services}
    assert set(result.assignments) | set(result.pending) == lb
    assert not set(result.assignments) & set(result.pending)
    for reason in result.pending.values():
        assert reason and "\n" not in reason
    for key, assignment in result.assignments.items():
        service = config.service(key)
        pool = config.pool(assignment.pool)
        assert service is not None and pool is not None
        assert assignment.ips and all(pool.contains(ip) for ip in assignment.ips)
        families = [ip.version for ip in assignment.ips]
        assert len(set(families)) == len(families)
        if service.requested_ips:
            assert set(assignment.ips) == set(service.requested_ips)
        elif service.ip_family_policy is IPFamilyPolicy.SINGLE_STACK:
            assert families == [service.ip_families[0]]
        if service.ip_family_policy is IPFamilyPolicy.REQUIRE_DUAL_STACK:
            assert set(families) == {4, 6}
        if service.requested_pool is not None:
            assert assignment.pool == service.requested_pool


@SETTINGS
@given(configs(), previouses)
def test_output_is_a_fixed_point(config: Config, previous: Previous) -> None:
    first = allocate(config, previous)
    again = allocate(config, held(first))
    assert again.assignments == first.assignments
    assert again.pending == first.pending
    assert again.pools == first.pools
    # Pinned as status (`plan --write-status`), with no state file: the same.
    pinned = dataclasses.replace(config, services=tuple(
        dataclasses.replace(s, status_ips=first.ips_of(s.key)) for s in config.services))
    assert held(allocate(pinned)) == held(first)


@SETTINGS
@given(configs(), previouses, st.randoms(use_true_random=False))
def test_input_order_does_not_matter(config: Config, previous: Previous, random: Random) -> None:
    services, pools, held_before = list(config.services), list(config.pools), list(previous.items())
    random.shuffle(services)
    random.shuffle(held_before)
    shuffled = dataclasses.replace(config, services=tuple(services))
    first, second = allocate(config, previous), allocate(shuffled, dict(held_before))
    assert first.assignments == second.assignments
    assert first.pending == second.pending
    assert list(first.assignments) == sorted(first.assignments)
    # Pool order only changes the order of the counts (and of names in messages).
    random.shuffle(pools)
    reordered = allocate(dataclasses.replace(config, pools=tuple(pools)), previous)
    assert held(reordered) == held(first)


@SETTINGS
@given(configs(), previouses, st.integers(1, 200), st.none() | st.integers(0, 3), st.booleans())
def test_assignments_survive_new_pool_and_growing_ranges(
    config: Config, previous: Previous, grow: int, priority: int | None, v6: bool
) -> None:
    first = allocate(config, previous)
    grown = tuple(
        dataclasses.replace(p, addresses=tuple(
            AddressRange(first=r.first, last=ipaddress.ip_address(int(r.last) + grow), text=r.text)
            for r in p.addresses))
        for p in config.pools
    )
    extra = IPAddressPool(
        name="added", addresses=(_range(6 if v6 else 4, BLOCKS + 1, 0, 50),),
        service_allocation=ServiceAllocation(priority=priority),
    )
    # What the first run wrote back: Kubernetes updates status, standalone mode
    # the state file (a status left stale would win: status is the pin).
    for with_status in (True, False):
        services = tuple(dataclasses.replace(s, status_ips=first.ips_of(s.key) if with_status else ())
                         for s in config.services)
        changed = dataclasses.replace(config, pools=(*grown, extra), services=services)
        after = allocate(changed, held(first))
        for key, assignment in first.assignments.items():
            assert after.assignments.get(key) == assignment


@SETTINGS
@given(configs(), previouses)
def test_counts_equal_a_recount(config: Config, previous: Previous) -> None:
    result = allocate(config, previous)
    for counts in result.pools:
        pool = config.pool(counts.pool)
        assert pool is not None
        addresses = [ipaddress.ip_address(i) for r in pool.addresses for i in range(int(r.first), int(r.last) + 1)]
        usable = [ip for ip in addresses if pool.contains(ip)]
        used = {ip for a in result.assignments.values() if a.pool == pool.name for ip in a.ips}
        assert counts.total_v4 == sum(ip.version == 4 for ip in usable)
        assert counts.total_v6 == sum(ip.version == 6 for ip in usable)
        assert counts.assigned_v4 == sum(ip.version == 4 for ip in used)
        assert counts.assigned_v6 == sum(ip.version == 6 for ip in used)
        assert counts.available_v4 >= 0 and counts.available_v6 >= 0
