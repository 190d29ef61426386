"""MetalLB's allocator tests (internal/allocator/allocator_test.go) as stories over metalloid's allocator.

Every case names its MetalLB test function and keeps its description; the
translation from MetalLB's call-by-call API to metalloid's whole-cluster
function is in tests/metallb_parity.py. Ported: TestAssignment,
TestPoolAllocation, TestAllocation, TestBuggyIPs, TestConfigReload,
TestAutoAssign, TestPoolCount, and the counts of TestPoolMetrics. Where
metalloid decides differently the step says so (`differs`) and
docs/migrating-from-metallb.md lists the difference with its reason.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from supervisor.allocating.freeips import PoolIndex
from supervisor.allocating.results import MAX_COUNT
from tests.metallb_parity import Cluster, Step, play, pool

GO = "internal/allocator/allocator_test.go"

# --- TestAssignment ------------------------------------------------------------------------------

ASSIGNMENT_POOLS = (
    pool("test", "1.2.3.4/31", "1000::4/127"),
    pool("test2", "1.2.4.0/24", "1000::4:0/120", buggy=True),
    pool("test3", "1.2.5.0/24", "1000::5:0/120", buggy=True, namespaces=("test-ns1",)),
    pool("test4", "1.2.6.0/24", "1000::6:0/120", buggy=True, selectors=({"team": "metallb"},)),
    pool("test5", "1.2.7.0/24", "1000::7:0/120", buggy=True, priority=20, namespaces=("test-ns1",),
         selectors=({"team": "metallb"},)),
    pool("test6", "1.2.8.0/24", "1000::9:0/120", buggy=True, priority=20, namespaces=("test-ns2",),
         selectors=({"foo": "bar"},)),
)  # fmt: skip

SHARE = {"ports": "tcp/80", "sharing": "share", "backend": "backend"}


def _assignment_half(first: str, second: str, buggy: tuple[str, ...], spare: str, shared: str) -> list[Step]:
    """One half of TestAssignment (IPv4, then the same story in IPv6, where no IP is buggy)."""
    steps = [
        Step(desc="assign s1", svc="s1", ips=first),
        Step(desc="s1 idempotent reassign", svc="s1", ips=first),
        Step(desc="s2 can't grab s1's IP", svc="s2", ips=first, expect="err"),
        Step(desc="s2 can get the other IP", svc="s2", ips=second),
        Step(desc="s1 now can't grab s2's IP", svc="s1", ips=second, expect="err"),
        Step(desc="s1 frees its IP", svc="s1", unassign=True),
        Step(desc="s2 can grab s1's former IP", svc="s2", ips=first),
        Step(desc="s1 can now grab s2's former IP", svc="s1", ips=second),
    ]
    steps += [Step(desc=f"s3 cannot grab a {ip.rsplit('.', 1)[1]} buggy IP", svc="s3", ips=ip, expect="err")
              for ip in buggy]  # fmt: skip
    steps += [
        Step(desc="s3 can grab another IP in that pool", svc="s3", ips=spare),
        Step(desc="s4 takes an IP, with sharing", svc="s4", ips=shared, **{**SHARE, "sharing": "sharing"}),
        Step(desc="s4 changes its sharing key in place", svc="s4", ips=shared, **SHARE),
        Step(desc="s3 can't share with s4 (port conflict)", svc="s3", ips=shared, expect="err", **SHARE),
        Step(desc="s3 can't share with s4 (wrong sharing key)", svc="s3", ips=shared, expect="err",
             **{**SHARE, "ports": "tcp/443", "sharing": "othershare"}),
        Step(desc="s3 can't share with s4 (wrong backend key)", svc="s3", ips=shared, expect="err",
             **{**SHARE, "ports": "tcp/443", "backend": "otherbackend"}),
        Step(desc="s3 takes the same IP as s4", svc="s3", ips=shared, **{**SHARE, "ports": "tcp/443"}),
        Step(desc="s3 can change its ports while keeping the same IP", svc="s3", ips=shared,
             **{**SHARE, "ports": "udp/53"}),
        Step(desc="s3 can't change its sharing key while keeping the same IP", svc="s3", ips=shared,
             expect="ok", **{**SHARE, "ports": "tcp/443", "sharing": "othershare"},
             differs="MetalLB refuses s3's change and s4 keeps the IP; metalloid rebuilds the holders from "
                     "status in namespace/name order, so s3 keeps it and s4 is left pending (see "
                     "test_assignment_sharing_key_change_leaves_the_other_holder_pending)"),
        # metalloid's previous step moved the IP to s3 alone; MetalLB's s3 still shares with key "share".
        Step(desc="(s3 back to MetalLB's state: key share, tcp/443)", svc="s3", ips=shared,
             **{**SHARE, "ports": "tcp/443"}),
        Step(desc="s4 back on the shared IP (metalloid only: undoes the difference above)", svc="s4", ips=shared,
             **SHARE),
        Step(desc="s3 can't change its backend key while keeping the same IP", svc="s3", ips=shared,
             expect="ok", **{**SHARE, "ports": "tcp/443", "backend": "otherbackend"},
             differs="as for the sharing key: s3 (first by name) keeps the IP, s4 is left pending"),
        Step(desc="(s3 back to MetalLB's state: backend backend)", svc="s3", ips=shared,
             **{**SHARE, "ports": "tcp/443"}),
        Step(desc="s4 takes s3's former IP", svc="s4", ips=spare),
    ]  # fmt: skip
    return steps


ASSIGNMENT_STEPS = [
    *_assignment_half("1.2.3.4", "1.2.3.5", ("1.2.4.0", "1.2.4.255"), "1.2.4.254", "1.2.4.3"),
    *_assignment_half("1000::4", "1000::4:5", (), "1000::4:ff", "1000::4:3"),
    # IP dual-stack
    Step(desc="s2 frees its IP", svc="s2", unassign=True),
    Step(desc="ip dual-stack assign s1", svc="s1", ips="1.2.3.4,1000::4"),
    Step(desc="ip dual-stack assign s1 from different pools", svc="s1", ips="1.2.4.5,1000::4", expect="err"),
    # IP pool compatibility (serviceAllocation) for requested IPs.
    Step(desc="attempt to assign ip from pool pinned on same namespace", svc="s1", namespace="test-ns1",
         ips="1.2.5.10", ports="tcp/8080"),
    Step(desc="attempt to assign ip from pool pinned on different namespace", svc="s1",
         namespace="testns-not-exist", ips="1.2.5.10", ports="tcp/8080", expect="err"),
    Step(desc="attempt to assign ip from pool pinned with same service label", svc="s1",
         namespace="testns-not-exist", labels={"team": "metallb"}, ips="1.2.6.10", ports="tcp/8080"),
    Step(desc="attempt to assign ip from pool pinned with different service label", svc="s1",
         namespace="testns-not-exist", labels={"team": "red"}, ips="1.2.6.10", ports="tcp/8080", expect="err"),
    Step(desc="attempt to assign ip from pool pinned with namespace and service label", svc="s1",
         namespace="test-ns1", labels={"team": "metallb"}, ips="1.2.7.10", ports="tcp/8080"),
    Step(desc="attempt to assign ip from pool pinned with namespace and incompatible service label", svc="s1",
         namespace="test-ns2", labels={"team": "metallb"}, ips="1.2.8.10", ports="tcp/8080", expect="err"),
    Step(desc="attempt to assign ip from pool pinned with service label and incompatible namespace", svc="s1",
         namespace="testns-not-exist", labels={"foo": "bar"}, ips="1.2.8.10", ports="tcp/8080", expect="err"),
]  # fmt: skip


def test_assignment() -> None:
    """TestAssignment, one story: each step's description is in the failure message."""
    cluster = Cluster(pools=ASSIGNMENT_POOLS)
    play(cluster, ASSIGNMENT_STEPS)


def test_assignment_sharing_key_change_leaves_the_other_holder_pending() -> None:
    """TestAssignment "s3 can't change its sharing key while keeping the same IP": the difference, spelled out."""
    cluster = Cluster(pools=ASSIGNMENT_POOLS)
    play(cluster, [
        Step(desc="s4 takes an IP, with sharing", svc="s4", ips="1.2.4.3", **SHARE),
        Step(desc="s3 takes the same IP as s4", svc="s3", ips="1.2.4.3", **{**SHARE, "ports": "tcp/443"}),
        Step(desc="s3 changes its sharing key", svc="s3", ips="1.2.4.3",
             **{**SHARE, "ports": "tcp/443", "sharing": "othershare"}),
    ])  # fmt: skip
    assert cluster.last is not None
    assert cluster.key("s4") in cluster.last.pending
    assert "without a matching metallb.io/allow-shared-ip key" in cluster.last.pending[cluster.key("s4")]


# --- TestPoolAllocation / TestAllocation / TestAutoAssign ------------------------------------------

V4 = "1.2.3.4|1.2.3.5|1.2.3.10|1.2.3.11"
V6_POOL = "1000::|1000::1|2000::|2000::1"


def _exhaust(family: str, valid: str, *, policy: str = "SingleStack", pool_name: str | None = None,
             share_first: bool = True) -> list[Step]:
    """The shape TestPoolAllocation and TestAllocation repeat per family: fill, refuse, free, share."""
    kw = {"family": family, "policy": policy, "pool": pool_name}
    steps = [Step(desc=f"s{i} gets an {family}", svc=f"s{i}", expect=valid, **kw) for i in range(1, 5)]  # type: ignore[arg-type]
    steps += [Step(desc=f"s{i} can't get an {family}", svc=f"s{i}", expect="err", **kw) for i in (5, 6)]  # type: ignore[arg-type]
    steps += [
        Step(desc=f"s1 releases its {family}", svc="s1", unassign=True),
        Step(desc=f"s5 can now grab s1's former {family}", svc="s5", expect=valid, **kw),  # type: ignore[arg-type]
        Step(desc=f"s6 still can't get an {family}", svc="s6", expect="err", **kw),  # type: ignore[arg-type]
    ]
    if share_first:
        steps.append(Step(desc=f"s5 unassigns in prep for enabling {family} sharing", svc="s5", unassign=True))
    steps += [
        Step(desc=f"s5 enables {family} sharing", svc="s5", ports="tcp/80", sharing="share", expect=valid, **kw),  # type: ignore[arg-type]
        Step(desc=f"s6 can get an {family} now, with sharing", svc="s6", ports="tcp/443", sharing="share",
             expect=valid, **kw),  # type: ignore[arg-type]
    ]
    steps += [Step(desc=f"s{i} clear old {family} address", svc=f"s{i}", unassign=True) for i in range(1, 7)]
    return steps


POOL_ALLOCATION_POOLS = (
    pool("not_this_one", "192.168.0.0/16", "fc00::1:0/112"),
    pool("test", "1.2.3.4/31", "1.2.3.10/31", "1000::/127", "2000::/127"),
    pool("test2", "10.20.30.0/24", "fc00::2:0/120"),
    pool("test-v4", "1.2.3.4/31", "1.2.3.10/31"),
    pool("test-v6", "1000::/127", "2000::/127"),
    pool("test-dualstack", "1.2.3.4/31", "1.2.3.10/31", "1000::/127", "2000::/127"),
)
DUAL_POOL = f"{V4}|{V6_POOL}"

POOL_ALLOCATION_STEPS = [
    *_exhaust("ipv4", V4, pool_name="test"),
    *_exhaust("ipv6", V6_POOL, pool_name="test"),
    Step(desc="s1 get an IPv4", svc="s1", family="ipv4", pool="test", expect=V4),
    Step(desc="s1 get an IPv6", svc="s1", family="ipv6", pool="test", expect=V6_POOL,
         differs="MetalLB's AllocateFromPool refuses a Service whose family changed (the should-not-happen case, "
                 "ipFamilies is immutable); its controller then clears and reallocates, which is what metalloid "
                 "does at once"),
    Step(desc="s1 clear", svc="s1", unassign=True),
    *_exhaust("dual", DUAL_POOL, policy="RequireDualStack", pool_name="test"),
    Step(desc="s1 gets dual-stack IPs (PreferDualStack)", svc="s1", family="dual", policy="PreferDualStack",
         pool="test", expect=DUAL_POOL),
    Step(desc="s2 gets ipv4 IP", svc="s2", family="ipv4", policy="PreferDualStack", pool="test-v4", expect=V4),
    Step(desc="s3 gets ipv6 IP", svc="s3", family="ipv6", policy="PreferDualStack", pool="test-v6", expect=V6_POOL),
    Step(desc="s2 clear old ipv4 address", svc="s2", unassign=True),
    Step(desc="s3 gets dualstack", svc="s3", family="dual", policy="PreferDualStack", pool="test-dualstack",
         expect=DUAL_POOL),
    Step(desc="allocating from a non-existent pool fails", svc="s5", family="ipv4", pool="nonexistentpool",
         expect="err"),
]  # fmt: skip

ALLOCATION_POOLS = (pool("test1", "1.2.3.4/31", "1000::4/127"), pool("test2", "1.2.3.10/31", "1000::10/127"))
V6_ALLOC = "1000::4|1000::5|1000::10|1000::11"

ALLOCATION_STEPS = [
    *_exhaust("ipv4", V4, share_first=False),
    *_exhaust("ipv6", V6_ALLOC, share_first=False),
    *_exhaust("dual", f"{V4}|{V6_ALLOC}", policy="RequireDualStack", share_first=False),
]

AUTO_ASSIGN_POOLS = (pool("test1", "1.2.3.4/31", "1000::4/127", auto=False),
                     pool("test2", "1.2.3.10/31", "1000::10/127"))  # fmt: skip


def _auto_assign_steps() -> list[Step]:
    steps: list[Step] = []
    for family, valid in (("ipv4", "1.2.3.10|1.2.3.11"), ("ipv6", "1000::10|1000::11"),
                          ("dual", "1.2.3.10|1.2.3.11|1000::10|1000::11")):  # fmt: skip
        policy = "RequireDualStack" if family == "dual" else "SingleStack"
        steps += [Step(desc=f"#{family} s{i}", svc=f"s{i}", family=family, policy=policy,
                       expect=valid if i <= 2 else "err") for i in range(1, 6)]  # fmt: skip
        steps += [Step(desc=f"clear s{i}", svc=f"s{i}", unassign=True) for i in range(1, 7)]
    return steps


@pytest.mark.parametrize(
    ("pools", "steps"),
    [
        pytest.param(POOL_ALLOCATION_POOLS, POOL_ALLOCATION_STEPS, id="TestPoolAllocation"),
        pytest.param(ALLOCATION_POOLS, ALLOCATION_STEPS, id="TestAllocation"),
        pytest.param(AUTO_ASSIGN_POOLS, _auto_assign_steps(), id="TestAutoAssign"),
    ],
)
def test_allocation_stories(pools: tuple, steps: list[Step]) -> None:  # type: ignore[type-arg]
    """TestPoolAllocation, TestAllocation, TestAutoAssign: one story each (the parameter id)."""
    play(Cluster(pools=pools), steps)


# --- TestBuggyIPs ------------------------------------------------------------------------------------


def test_buggy_ips() -> None:
    """TestBuggyIPs: six usable IPs across four pools, two of them avoiding .0/.255; the seventh Service waits."""
    pools = (pool("test", "1.2.3.0/31"), pool("test2", "1.2.3.254/31"), pool("test3", "1.2.4.0/31", buggy=True),
             pool("test4", "1.2.4.254/31", buggy=True))  # fmt: skip
    valid = "1.2.3.0|1.2.3.1|1.2.3.254|1.2.3.255|1.2.4.1|1.2.4.254"
    steps = [Step(desc=f"#{i}", svc=f"s{i}", family="ipv4", expect=valid) for i in range(1, 7)]
    steps.append(Step(desc="#7", svc="s7", family="ipv4", expect="err"))
    cluster = Cluster(pools=pools)
    play(cluster, steps)
    held = [cluster.holds(f"s{i}") for i in range(1, 7)]
    assert len({ip for ips in held for ip in ips}) == 6  # six different IPs


# --- TestConfigReload ----------------------------------------------------------------------------------

RELOAD_START = (pool("test", "1.2.3.0/30", "1000::/126"), pool("unused", "1.2.4.0/30", "1001::/126"))


@pytest.mark.parametrize(
    ("pools", "pool_s1", "pool_s2"),
    [
        pytest.param((pool("test", "1.2.3.0/30", "1000::/126"),), "test", "test", id="set same config is no-op"),
        pytest.param((pool("test", "1.2.3.0/24", "1000::/120"),), "test", "test", id="expand pool"),
        pytest.param((pool("test", "1.2.3.0/30", "1000::/126"),), "test", "test", id="shrink pool"),
        pytest.param((pool("test", "1.2.3.2/31", "1000::0/126"),), "", "test",
                     id="can't shrink further, removing the service allocation"),
        pytest.param((pool("test", "1.2.3.0/30", "1000::2/127"),), "test", "",
                     id="can't shrink further ipv6, removing the service allocation"),
        pytest.param((pool("test2", "1.2.3.0/30", "1000::0/126"),), "test2", "test2", id="rename the pool"),
        pytest.param((pool("test", "1.2.3.0/31", "1000::2/127"), pool("test2", "1.2.3.2/31", "1000::/127")),
                     "test", "test2", id="split pool"),
        pytest.param((pool("test2", "1.2.3.0/31", "1000::/127", buggy=True),), "", "test2",
                     id="enable buggy IPs not allowed"),
    ],
)  # fmt: skip
def test_config_reload(pools: tuple, pool_s1: str, pool_s2: str) -> None:  # type: ignore[type-arg]
    """TestConfigReload: s1 holds 1.2.3.0 and s2 1000::; after the new pools, who still holds them, from which pool.

    MetalLB's "" (unassigned) means the Service lost that IP (the controller
    then gives it another one: metalloid does that in the same run).
    """
    cluster = Cluster(pools=RELOAD_START)
    play(cluster, [Step(desc="Assign(s1, 1.2.3.0)", svc="s1", ips="1.2.3.0"),
                   Step(desc="Assign(s2, 1000::)", svc="s2", ips="1000::")])  # fmt: skip
    # The Services asked for nothing in particular: they only hold what they were given.
    for name, family in (("s1", (4,)), ("s2", (6,))):
        service = cluster.services[name]
        cluster.services[name] = replace(service, requested_ips=(), ip_families=family)
    cluster.pools = pools
    result = cluster.run()
    for name, ip, expected in (("s1", "1.2.3.0", pool_s1), ("s2", "1000::", pool_s2)):
        key = cluster.key(name)
        kept = [str(i) for i in cluster.holds(name)] == [ip]
        if expected:
            assert kept and result.assignments[key].pool == expected, (name, result.assignments.get(key))
        else:
            assert not kept, (name, cluster.holds(name))


# --- TestPoolCount, TestPoolMetrics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidrs", "buggy", "total", "ipv4", "ipv6"),
    [
        pytest.param(("1.2.3.0/24",), False, 256, 256, 0, id="BGP /24"),
        pytest.param(("1.2.3.0/24", "2.3.4.128/25"), False, 384, 384, 0, id="BGP /24 and /25"),
        pytest.param(("1.2.3.0/24", "2.3.4.128/25"), True, 381, 381, 0, id="BGP /24 and /25, no buggy IPs"),
        pytest.param(("1.2.3.0/24", "2.3.4.128/25", "1000::/64"), True, MAX_COUNT, 381, MAX_COUNT,
                     id="BGP a BIG ipv6 range"),
        pytest.param(("1.2.3.0/31", "1000::/127"), True, 3, 1, 2, id="ipv4 and ipv6 range"),
    ],
)  # fmt: skip
def test_pool_count(cidrs: tuple[str, ...], buggy: bool, total: int, ipv4: int, ipv6: int) -> None:
    """TestPoolCount."""
    from supervisor.allocating.results import PoolCounts

    index = PoolIndex(pool("p", *cidrs, buggy=buggy))
    counts = PoolCounts(pool="p", total_v4=index.total(4), assigned_v4=0, total_v6=index.total(6), assigned_v6=0)
    assert (counts.total, counts.total_v4, counts.total_v6) == (total, ipv4, ipv6)


METRICS_STEPS = [  # (step, IPv4 addresses in use after it)
    (Step(desc="assign s1", svc="s1", ips="1.2.3.4"), 1),
    (Step(desc="assign s2", svc="s2", ips="1.2.3.5"), 2),
    (Step(desc="unassign s1", svc="s1", unassign=True), 1),
    (Step(desc="unassign s2", svc="s2", unassign=True), 0),
    (Step(desc="assign s1 shared", svc="s1", ips="1.2.3.4", sharing="key", ports="tcp/80"), 1),
    (Step(desc="assign s2 shared", svc="s2", ips="1.2.3.4", sharing="key", ports="tcp/443"), 1),
    (Step(desc="assign s3 shared", svc="s3", ips="1.2.3.4", sharing="key", ports="tcp/23"), 1),
    (Step(desc="unassign s1 shared", svc="s1", unassign=True), 1),
    (Step(desc="unassign s2 shared", svc="s2", unassign=True), 1),
    (Step(desc="unassign s3 shared", svc="s3", unassign=True), 0),
]


def test_pool_metrics() -> None:
    """TestPoolMetrics: capacity 4+4, then IPv4 in use / available after each step; a shared IP counts once."""
    cluster = Cluster(pools=(pool("test", "1.2.3.4/30", "1000::4/126"),))
    [start] = cluster.run().pools
    assert start.total == 8
    assert (start.available_v4, start.available_v6, start.assigned_v4, start.assigned_v6) == (4, 4, 0, 0)
    for step, in_use in METRICS_STEPS:
        play(cluster, [step])
        assert cluster.last is not None
        [counts] = cluster.last.pools
        assert (counts.assigned_v4, counts.available_v4, counts.assigned_v6, counts.available_v6) == (
            in_use, 4 - in_use, 0, 4), step.desc
    play(cluster, [Step(desc="assign s1", svc="s1", ips="1.2.3.4")])
    cluster.pools = ()
    assert cluster.run().pools == ()  # the pool is gone: no counts left for it
