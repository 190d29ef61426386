"""Table-driven tests of the allocator: one row per MetalLB rule, with readable ids.

Each row builds a Config from small builders, runs `allocate`, and states what
every Service gets: `"10.0.0.10"`, `"10.0.0.10,fd00::10"`, `"10.0.0.10@pool"` to
also check the pool, or `"pending: <text the reason must contain>"`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from supervisor.allocating.allocator import allocate
from supervisor.allocating.results import AllocationResult
from supervisor.config.addresses import parse_address_range
from supervisor.config.model import (
    AddressRange,
    Config,
    ExternalTrafficPolicy,
    IPAddress,
    IPAddressPool,
    IPFamilyPolicy,
    LabelSelector,
    Namespace,
    Service,
    ServiceAllocation,
    ServiceKey,
    ServicePort,
    labels_of,
)


def rng(text: str) -> AddressRange:
    parsed = parse_address_range(text)
    assert isinstance(parsed, AddressRange), parsed
    return parsed


def pool(
    name: str,
    *addresses: str,
    auto: bool = True,
    buggy: bool = False,
    priority: int | None = None,
    namespaces: tuple[str, ...] = (),
    ns_selector: Mapping[str, str] | None = None,
    svc_selector: Mapping[str, str] | None = None,
) -> IPAddressPool:
    allocation = None
    if priority is not None or namespaces or ns_selector is not None or svc_selector is not None:
        allocation = ServiceAllocation(
            priority=priority,
            namespaces=namespaces,
            namespace_selectors=(LabelSelector(match_labels=labels_of(ns_selector)),) if ns_selector else (),
            service_selectors=(LabelSelector(match_labels=labels_of(svc_selector)),) if svc_selector else (),
        )
    return IPAddressPool(
        name=name,
        addresses=tuple(rng(a) for a in addresses),
        auto_assign=auto,
        avoid_buggy_ips=buggy,
        service_allocation=allocation,
    )


def ips(text: str) -> tuple[IPAddress, ...]:
    return tuple(ipaddress.ip_address(t) for t in text.split(",") if t)


def svc(
    ref: str,
    *,
    ip: str = "",
    pool: str | None = None,
    key: str | None = None,
    ports: tuple[int | str, ...] = (80,),
    local: bool = False,
    selector: Mapping[str, str] | None = None,
    families: tuple[int, ...] = (4,),
    policy: str = "SingleStack",
    status: str = "",
    lb_class: str | None = None,
    labels: Mapping[str, str] | None = None,
    type: str = "LoadBalancer",
) -> Service:
    key_ = ServiceKey.parse(ref)
    parsed_ports = []
    for p in ports:
        number, _, protocol = str(p).partition("/")
        parsed_ports.append(ServicePort(port=int(number), protocol=protocol or "TCP"))
    return Service(
        namespace=key_.namespace,
        name=key_.name,
        type=type,
        labels=labels_of(labels),
        selector=labels_of(selector if selector is not None else {"app": key_.name}),
        ports=tuple(parsed_ports),
        requested_ips=ips(ip),
        requested_pool=pool,
        sharing_key=key,
        ip_families=families,
        ip_family_policy=IPFamilyPolicy(policy),
        external_traffic_policy=ExternalTrafficPolicy.LOCAL if local else ExternalTrafficPolicy.CLUSTER,
        load_balancer_class=lb_class,
        status_ips=ips(status),
    )


@dataclass(frozen=True, kw_only=True)
class Case:
    id: str
    pools: tuple[IPAddressPool, ...]
    services: tuple[Service, ...]
    expect: dict[str, str]
    previous: dict[str, str] = field(default_factory=dict)
    namespaces: tuple[Namespace, ...] = ()
    lb_class: str | None = None


def run(case: Case) -> AllocationResult:
    config = Config(pools=case.pools, services=case.services, namespaces=case.namespaces)
    previous = {ServiceKey.parse(k): ips(v) for k, v in case.previous.items()}
    return allocate(config, previous, lb_class=case.lb_class)


def outcome(result: AllocationResult, ref: str, with_pool: bool) -> str:
    key = ServiceKey.parse(ref)
    if key in result.pending:
        return "pending: " + result.pending[key]
    if key in result.assignments:
        found = result.assignments[key]
        text = ",".join(str(ip) for ip in found.ips)
        return f"{text}@{found.pool}" if with_pool else text
    return "absent"


P1 = pool("p", "10.0.0.10-10.0.0.19")

CASES = [
    # --- lowest free, spec order, ordering --------------------------------------------------
    Case(id="lowest-free-first", pools=(P1,), services=(svc("a"), svc("b")),
         expect={"a": "10.0.0.10", "b": "10.0.0.11"}),
    Case(id="ranges-in-spec-order-not-numeric",
         pools=(pool("p", "10.0.2.5-10.0.2.5", "10.0.1.1-10.0.1.9"),), services=(svc("a"), svc("b")),
         expect={"a": "10.0.2.5", "b": "10.0.1.1"}),
    Case(id="services-ordered-by-namespace-then-name", pools=(P1,),
         services=(svc("zz/a"), svc("aa/b"), svc("aa/a")),
         expect={"aa/a": "10.0.0.10", "aa/b": "10.0.0.11", "zz/a": "10.0.0.12"}),
    Case(id="cidr-includes-network-address", pools=(pool("p", "10.0.0.0/30"),), services=(svc("a"),),
         expect={"a": "10.0.0.0"}),
    Case(id="single-ip-pool", pools=(pool("p", "10.0.0.7"),), services=(svc("a"),), expect={"a": "10.0.0.7"}),
    Case(id="pool-exhausted", pools=(pool("first-pool", "10.0.0.10-10.0.0.11"),),
         services=(svc("a"), svc("b"), svc("c")),
         expect={"c": "pending: no available IPs in pool first-pool (2 of 2 assigned)"}),
    Case(id="no-pools-at-all", pools=(), services=(svc("a"),),
         expect={"a": "pending: no IPAddressPool exists"}),
    # --- requested IPs -------------------------------------------------------------------
    Case(id="requested-ip", pools=(P1,), services=(svc("a", ip="10.0.0.15"),), expect={"a": "10.0.0.15"}),
    Case(id="requested-ip-outside-every-pool",
         pools=(pool("first-pool", "10.0.10.10-10.0.10.99"),), services=(svc("pihole/pi-hole", ip="10.0.0.200"),),
         expect={"pihole/pi-hole": "pending: requested IP 10.0.0.200 is in no IPAddressPool "
                 "(pools: first-pool 10.0.10.10-10.0.10.99)"}),
    Case(id="requested-ips-before-auto-in-same-run", pools=(P1,), services=(svc("a"), svc("b", ip="10.0.0.10")),
         expect={"a": "10.0.0.11", "b": "10.0.0.10"}),
    Case(id="requested-ip-held-not-stolen", pools=(P1,), services=(svc("a"), svc("b", ip="10.0.0.12")),
         previous={"a": "10.0.0.12"},
         expect={"a": "10.0.0.12", "b": "pending: IP 10.0.0.12 is held by default/a without a matching "
                 "metallb.io/allow-shared-ip key"}),
    Case(id="requested-ip-from-autoassign-false-pool", pools=(pool("p", "10.0.0.0/24", auto=False),),
         services=(svc("a", ip="10.0.0.5"),), expect={"a": "10.0.0.5@p"}),
    Case(id="requested-ip-in-other-pool-than-requested",
         pools=(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")),
         services=(svc("s", ip="10.0.0.5", pool="b"),),
         expect={"s": "pending: requested IP 10.0.0.5 is in pool a, not in pool b"}),
    Case(id="requested-ip-and-matching-pool", pools=(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")),
         services=(svc("s", ip="10.0.1.5", pool="b"),), expect={"s": "10.0.1.5@b"}),
    Case(id="requested-dual-stack-ips-one-pool", pools=(pool("d", "10.0.0.0/24", "fd00::/120"),),
         services=(svc("s", ip="fd00::5,10.0.0.5", policy="RequireDualStack", families=(4, 6)),),
         expect={"s": "fd00::5,10.0.0.5@d"}),  # MetalLB keeps the order the annotation lists
    Case(id="requested-dual-stack-ips-two-pools", pools=(pool("a", "10.0.0.0/24"), pool("b", "fd00::/120")),
         services=(svc("s", ip="10.0.0.5,fd00::5", policy="RequireDualStack", families=(4, 6)),),
         expect={"s": "pending: requested IPs must come from one pool"}),
    Case(id="requested-two-ipv4", pools=(P1,),
         services=(svc("s", ip="10.0.0.11,10.0.0.12", policy="PreferDualStack"),),
         expect={"s": "pending: default/s asks for 2 IPv4 addresses"}),
    Case(id="requested-ipv6-on-default-families", pools=(pool("v6", "fd00::/64"),),
         services=(svc("s", ip="fd00::1"),), expect={"s": "fd00::1"}),
    # --- requested pool, autoAssign ------------------------------------------------------
    Case(id="autoassign-false-pool-skipped", pools=(pool("a", "10.0.0.0/24", auto=False), pool("b", "10.0.1.0/24")),
         services=(svc("s"),), expect={"s": "10.0.1.0@b"}),
    Case(id="only-autoassign-false-pools", pools=(pool("a", "10.0.0.0/24", auto=False),), services=(svc("s"),),
         expect={"s": "pending: every pool that could serve it has autoAssign: false (a)"}),
    Case(id="requested-pool-even-if-autoassign-false",
         pools=(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24", auto=False)),
         services=(svc("s", pool="b"),), expect={"s": "10.0.1.0@b"}),
    Case(id="requested-pool-missing", pools=(P1,), services=(svc("s", pool="nope"),),
         expect={"s": "pending: pool nope does not exist"}),
    Case(id="requested-pool-full-does-not-spill", pools=(pool("a", "10.0.0.1"), pool("b", "10.0.1.0/24")),
         services=(svc("s1", pool="a"), svc("s2", pool="a")),
         expect={"s1": "10.0.0.1@a", "s2": "pending: no available IPs in pool a (1 of 1 assigned)"}),
    # --- priority ------------------------------------------------------------------------
    Case(id="priority-lower-number-first",
         pools=(pool("a", "10.0.1.0/24", priority=20), pool("b", "10.0.2.0/24", priority=10), pool("c", "10.0.0.0/24")),
         services=(svc("s"),), expect={"s": "10.0.2.0@b"}),
    Case(id="priority-pools-without-priority-last",
         pools=(pool("a", "10.0.0.0/24"), pool("z", "10.0.9.0/24", priority=99)),
         services=(svc("s"),), expect={"s": "10.0.9.0@z"}),
    Case(id="priority-falls-through-when-full",
         pools=(pool("a", "10.0.1.1", priority=1), pool("b", "10.0.2.0/24", priority=2)),
         services=(svc("s1"), svc("s2")), expect={"s1": "10.0.1.1@a", "s2": "10.0.2.0@b"}),
    Case(id="no-priority-by-name", pools=(pool("zeta", "10.0.0.0/24"), pool("alpha", "10.0.9.0/24")),
         services=(svc("s"),), expect={"s": "10.0.9.0@alpha"}),
    Case(id="all-pools-full-names-each",
         pools=(pool("a", "10.0.1.1"), pool("b", "10.0.2.1")), services=(svc("s1"), svc("s2"), svc("s3")),
         expect={"s3": "pending: no available IPs in pools a (1 of 1 assigned), b (1 of 1 assigned)"}),
    # --- avoidBuggyIPs -------------------------------------------------------------------
    Case(id="avoid-buggy-skips-255-and-0", pools=(pool("p", "10.0.0.254-10.0.1.2", buggy=True),),
         services=(svc("a"), svc("b"), svc("c")),
         expect={"a": "10.0.0.254", "b": "10.0.1.1", "c": "10.0.1.2"}),
    Case(id="avoid-buggy-requested-dot-zero", pools=(pool("p", "10.0.0.0/23", buggy=True),),
         services=(svc("a", ip="10.0.1.0"),),
         expect={"a": "pending: requested IP 10.0.1.0 ends in .0 or .255, which pool p avoids"}),
    Case(id="avoid-buggy-off-uses-dot-zero", pools=(pool("p", "10.0.1.0/24"),), services=(svc("a"),),
         expect={"a": "10.0.1.0"}),
    Case(id="avoid-buggy-ignored-for-ipv6", pools=(pool("p", "fd00::/120", buggy=True),),
         services=(svc("a", families=(6,)),), expect={"a": "fd00::"}),
    # --- serviceAllocation -----------------------------------------------------------------
    Case(id="namespaces-allowed", pools=(pool("p", "10.0.0.0/24", namespaces=("team-a",)),),
         services=(svc("team-a/s"),), expect={"team-a/s": "10.0.0.0"}),
    Case(id="namespaces-refused-single-pool", pools=(pool("p", "10.0.0.0/24", namespaces=("team-a",)),),
         services=(svc("team-b/s"),),
         expect={"team-b/s": "pending: pool p does not allow namespace team-b (serviceAllocation)"}),
    Case(id="namespaces-refused-every-pool",
         pools=(pool("p", "10.0.0.0/24", namespaces=("a",)), pool("q", "10.0.1.0/24", namespaces=("b",))),
         services=(svc("ns/s"),), expect={"ns/s": "pending: no pool allows namespace ns (serviceAllocation)"}),
    Case(id="namespace-pinned-pool-wins-by-priority",
         pools=(pool("shared", "10.0.0.0/24"), pool("team", "10.0.1.0/24", namespaces=("team",), priority=1)),
         services=(svc("team/s"), svc("other/s")), expect={"team/s": "10.0.1.0@team", "other/s": "10.0.0.0@shared"}),
    Case(id="namespace-selector-by-namespace-labels",
         pools=(pool("p", "10.0.0.0/24", ns_selector={"env": "prod"}),),
         namespaces=(Namespace(name="web", labels=labels_of({"env": "prod"})),),
         services=(svc("web/s"), svc("dev/s")),
         expect={"web/s": "10.0.0.0", "dev/s": "pending: pool p does not allow namespace dev"}),
    Case(id="namespace-selector-metadata-name-label",
         pools=(pool("p", "10.0.0.0/24", ns_selector={"kubernetes.io/metadata.name": "web"}),),
         services=(svc("web/s"),), expect={"web/s": "10.0.0.0"}),
    Case(id="service-selector", pools=(pool("p", "10.0.0.0/24", svc_selector={"tier": "edge"}),),
         services=(svc("a", labels={"tier": "edge"}), svc("b")),
         expect={"a": "10.0.0.0", "b": "pending: pool p does not select default/b by its labels"}),
    Case(id="requested-ip-in-refusing-pool", pools=(pool("p", "10.0.0.0/24", namespaces=("a",)),),
         services=(svc("b/s", ip="10.0.0.9"),),
         expect={"b/s": "pending: pool p does not allow namespace b (serviceAllocation)"}),
    # MetalLB's Allocate: pinned pools (serviceAllocation matching the Service) first, by priority, then the rest.
    Case(id="pinned-pool-without-priority-beats-unpinned",
         pools=(pool("general", "10.0.0.0/24"), pool("team", "10.0.1.0/24", namespaces=("team",))),
         services=(svc("team/s"), svc("other/s")), expect={"team/s": "10.0.1.0@team", "other/s": "10.0.0.0@general"}),
    Case(id="pinned-pool-full-falls-back-to-unpinned",
         pools=(pool("general", "10.0.0.0/24"), pool("team", "10.0.1.1", namespaces=("team",))),
         services=(svc("team/a"), svc("team/b")), expect={"team/a": "10.0.1.1@team", "team/b": "10.0.0.0@general"}),
    Case(id="priority-only-allocation-pins-every-service",
         pools=(pool("a-general", "10.0.0.0/24"), pool("z-pinned", "10.0.1.0/24", priority=50)),
         services=(svc("s"),), expect={"s": "10.0.1.0@z-pinned"}),
    Case(id="priority-zero-is-unset-and-last",
         pools=(pool("a", "10.0.0.0/24", priority=0, namespaces=("ns",)),
                pool("b", "10.0.1.0/24", priority=7, namespaces=("ns",))),
         services=(svc("ns/s"),), expect={"ns/s": "10.0.1.0@b"}),
    Case(id="pinned-pools-of-other-services-are-never-used",
         pools=(pool("team", "10.0.1.0/24", namespaces=("team",)), pool("general", "10.0.0.1")),
         services=(svc("x/a"), svc("x/b")),
         expect={"x/a": "10.0.0.1@general", "x/b": "pending: no available IPs in pool general"}),
    # --- sharing -------------------------------------------------------------------------
    Case(id="sharing-empty-key-is-no-key", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="", ports=(80,)), svc("b", ip="10.0.0.15", key="", ports=(443,))),
         expect={"b": "pending: IP 10.0.0.15 is held by default/a without a matching metallb.io/allow-shared-ip"}),
    Case(id="sharing-local-without-selector-shares-with-cluster", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="k", ports=(80,)),
                   svc("b", ip="10.0.0.15", key="k", ports=(443,), local=True, selector={})),
         expect={"a": "10.0.0.15", "b": "10.0.0.15"}),
    Case(id="sharing-requested-same-key-other-ports", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="k", ports=(80,)), svc("b", ip="10.0.0.15", key="k", ports=(443,))),
         expect={"a": "10.0.0.15", "b": "10.0.0.15"}),
    Case(id="sharing-auto-same-key-colocates", pools=(P1,),
         services=(svc("a", key="k", ports=(80,)), svc("b", ports=(80,)), svc("c", key="k", ports=(443,))),
         expect={"a": "10.0.0.10", "b": "10.0.0.11", "c": "10.0.0.10"}),
    Case(id="sharing-auto-port-clash-takes-new-ip", pools=(P1,),
         services=(svc("a", key="k", ports=(80,)), svc("b", key="k", ports=(80,))),
         expect={"a": "10.0.0.10", "b": "10.0.0.11"}),
    Case(id="sharing-tcp-and-udp-same-port", pools=(P1,),
         services=(svc("a", key="dns", ports=("53/TCP",)), svc("b", key="dns", ports=("53/UDP",))),
         expect={"a": "10.0.0.10", "b": "10.0.0.10"}),
    Case(id="sharing-requested-port-clash", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="k", ports=(80, 443)), svc("b", ip="10.0.0.15", key="k", ports=(443,))),
         expect={"b": "pending: port 443/TCP of default/b clashes with default/a on shared IP 10.0.0.15"}),
    Case(id="sharing-different-keys", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="k1", ports=(80,)), svc("b", ip="10.0.0.15", key="k2", ports=(443,))),
         expect={"b": "pending: IP 10.0.0.15 is held by default/a without a matching metallb.io/allow-shared-ip key"}),
    Case(id="sharing-holder-has-no-key", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", ports=(80,)), svc("b", ip="10.0.0.15", key="k", ports=(443,))),
         expect={"b": "pending: IP 10.0.0.15 is held by default/a without a matching metallb.io/allow-shared-ip key"}),
    Case(id="sharing-local-same-selector", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="k", ports=(80,), local=True, selector={"app": "x"}),
                   svc("b", ip="10.0.0.15", key="k", ports=(443,), local=True, selector={"app": "x"})),
         expect={"a": "10.0.0.15", "b": "10.0.0.15"}),
    Case(id="sharing-local-different-selector", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="k", ports=(80,), local=True),
                   svc("b", ip="10.0.0.15", key="k", ports=(443,), local=True)),
         expect={"b": "pending: IP 10.0.0.15 is shared with default/a (metallb.io/allow-shared-ip: k), but "
                 "externalTrafficPolicy Local needs both services to have the same selector"}),
    Case(id="sharing-local-with-cluster", pools=(P1,),
         services=(svc("a", ip="10.0.0.15", key="k", ports=(80,), selector={"app": "x"}),
                   svc("b", ip="10.0.0.15", key="k", ports=(443,), local=True, selector={"app": "x"})),
         expect={"b": "pending: IP 10.0.0.15 is shared with default/a (metallb.io/allow-shared-ip: k), but "
                 "default/a has externalTrafficPolicy Cluster and default/b has Local"}),
    # --- IP families ---------------------------------------------------------------------
    Case(id="ipv6-single-stack", pools=(pool("v4", "10.0.0.0/24"), pool("v6", "fd00::10-fd00::20")),
         services=(svc("s", families=(6,)),), expect={"s": "fd00::10@v6"}),
    Case(id="ipv6-no-pool", pools=(P1,), services=(svc("s", families=(6,)),),
         expect={"s": "pending: no pool serves IPv6"}),
    Case(id="ipv6-requested-pool-without-ipv6", pools=(P1,), services=(svc("s", families=(6,), pool="p"),),
         expect={"s": "pending: pool p has no IPv6 addresses"}),
    Case(id="require-dual-stack-same-pool",
         pools=(pool("a4", "10.0.0.0/24"), pool("b6", "fd00::/120"), pool("dual", "10.0.9.0/24", "fd09::/120")),
         services=(svc("s", policy="RequireDualStack", families=(6, 4)),), expect={"s": "10.0.9.0,fd09::@dual"}),
    Case(id="require-dual-stack-no-dual-pool", pools=(pool("a4", "10.0.0.0/24"), pool("b6", "fd00::/120")),
         services=(svc("s", policy="RequireDualStack", families=(4, 6)),),
         expect={"s": "pending: RequireDualStack but no pool has both IPv4 and IPv6"}),
    Case(id="require-dual-stack-one-family-exhausted", pools=(pool("d", "10.0.0.1", "fd00::/120"),),
         services=(svc("a"), svc("s", policy="RequireDualStack", families=(4, 6))),
         expect={"a": "10.0.0.1", "s": "pending: no available IPs in pool d (1 of 1 IPv4 assigned)"}),
    Case(id="prefer-dual-stack-takes-both", pools=(pool("a4", "10.0.0.0/24"), pool("d", "10.0.9.0/24", "fd09::/120")),
         services=(svc("s", policy="PreferDualStack", families=(4, 6)),), expect={"s": "10.0.9.0,fd09::@d"}),
    Case(id="prefer-dual-stack-falls-back-to-single", pools=(pool("a4", "10.0.0.0/24"),),
         services=(svc("s", policy="PreferDualStack", families=(4, 6)),), expect={"s": "10.0.0.0@a4"}),
    # MetalLB's findBestPoolForService: one ipFamilies entry means one IP of that family, whatever the policy.
    Case(id="prefer-dual-stack-one-family-wants-that-family", pools=(pool("v6", "fd00::/120"),),
         services=(svc("s", policy="PreferDualStack", families=(4,)),), expect={"s": "pending: no pool serves IPv4"}),
    Case(id="prefer-dual-stack-one-family-gets-one-ip", pools=(pool("d", "10.0.9.0/24", "fd09::/120"),),
         services=(svc("s", policy="PreferDualStack", families=(6,)),), expect={"s": "fd09::@d"}),
    # No pool has both: the first pool with the primary family (ipFamilies[0]) wins over name order.
    Case(id="prefer-dual-stack-primary-family-first", pools=(pool("a4", "10.0.0.0/24"), pool("b6", "fd00::/120")),
         services=(svc("s6", policy="PreferDualStack", families=(6, 4)),
                   svc("s4", policy="PreferDualStack", families=(4, 6))),
         expect={"s6": "fd00::@b6", "s4": "10.0.0.0@a4"}),
    Case(id="prefer-dual-stack-secondary-family-when-no-primary", pools=(pool("b6", "fd00::/120"),),
         services=(svc("s", policy="PreferDualStack", families=(4, 6)),), expect={"s": "fd00::@b6"}),
    # --- which services ----------------------------------------------------------------------
    Case(id="not-load-balancer-ignored", pools=(P1,), services=(svc("a", type="ClusterIP"), svc("b")),
         expect={"a": "absent", "b": "10.0.0.10"}),
    Case(id="foreign-lb-class-ignored", pools=(P1,), services=(svc("a", lb_class="other"), svc("b")),
         expect={"a": "absent", "b": "10.0.0.10"}),
    Case(id="lb-class-serves-only-its-class", pools=(P1,), services=(svc("a", lb_class="mine"), svc("b")),
         lb_class="mine", expect={"a": "10.0.0.10", "b": "absent"}),
    # --- rebuild: previous and status ------------------------------------------------------------
    Case(id="previous-kept-over-lower-free", pools=(P1,), services=(svc("a"), svc("b")),
         previous={"a": "10.0.0.15"}, expect={"a": "10.0.0.15", "b": "10.0.0.10"}),
    Case(id="status-kept", pools=(P1,), services=(svc("a", status="10.0.0.17"),), expect={"a": "10.0.0.17"}),
    Case(id="status-wins-over-previous", pools=(P1,), services=(svc("a", status="10.0.0.17"), svc("b")),
         previous={"a": "10.0.0.12"}, expect={"a": "10.0.0.17", "b": "10.0.0.10"}),
    Case(id="status-pin-beats-earlier-previous", pools=(P1,), services=(svc("a"), svc("b", status="10.0.0.12")),
         previous={"a": "10.0.0.12"}, expect={"a": "10.0.0.10", "b": "10.0.0.12"}),
    Case(id="invalid-status-falls-back-to-previous", pools=(P1,), services=(svc("a", status="10.9.9.9"),),
         previous={"a": "10.0.0.13"}, expect={"a": "10.0.0.13"}),
    Case(id="previous-outside-pools-reallocated", pools=(P1,), services=(svc("a"),),
         previous={"a": "192.168.0.1"}, expect={"a": "10.0.0.10"}),
    Case(id="previous-double-holder-first-keeps", pools=(P1,), services=(svc("b"), svc("a")),
         previous={"a": "10.0.0.14", "b": "10.0.0.14"}, expect={"a": "10.0.0.14", "b": "10.0.0.10"}),
    Case(id="previous-in-autoassign-false-pool-kept", pools=(pool("p", "10.0.0.0/24", auto=False),),
         services=(svc("a"),), previous={"a": "10.0.0.9"}, expect={"a": "10.0.0.9"}),
    Case(id="previous-not-in-requested-pool-moves", pools=(pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")),
         services=(svc("s", pool="b"),), previous={"s": "10.0.0.9"}, expect={"s": "10.0.1.0@b"}),
    Case(id="previous-differs-from-requested-ip-moves", pools=(P1,), services=(svc("s", ip="10.0.0.18"),),
         previous={"s": "10.0.0.11"}, expect={"s": "10.0.0.18"}),
    Case(id="previous-refused-by-namespace-moves",
         pools=(pool("a", "10.0.0.0/24", namespaces=("x",)), pool("b", "10.0.1.0/24")),
         services=(svc("y/s"),), previous={"y/s": "10.0.0.9"}, expect={"y/s": "10.0.1.0@b"}),
    Case(id="previous-wrong-family-moves", pools=(pool("d", "10.0.0.0/24", "fd00::/120"),),
         services=(svc("s", families=(6,)),), previous={"s": "10.0.0.9"}, expect={"s": "fd00::"}),
    Case(id="previous-survives-higher-priority-pool",
         pools=(pool("a", "10.0.0.0/24"), pool("new", "10.0.1.0/24", priority=1)),
         services=(svc("s"), svc("t")), previous={"s": "10.0.0.9"}, expect={"s": "10.0.0.9@a", "t": "10.0.1.0@new"}),
    Case(id="previous-sharing-kept", pools=(P1,),
         services=(svc("a", key="k", ports=(80,)), svc("b", key="k", ports=(443,))),
         previous={"a": "10.0.0.16", "b": "10.0.0.16"}, expect={"a": "10.0.0.16", "b": "10.0.0.16"}),
    Case(id="previous-sharing-key-removed-second-moves", pools=(P1,),
         services=(svc("a", key="k", ports=(80,)), svc("b", ports=(443,))),
         previous={"a": "10.0.0.16", "b": "10.0.0.16"}, expect={"a": "10.0.0.16", "b": "10.0.0.10"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_allocation_rules(case: Case) -> None:
    result = run(case)
    for ref, expected in case.expect.items():
        actual = outcome(result, ref, with_pool="@" in expected)
        if expected.startswith("pending: "):
            assert actual.startswith("pending: "), f"{ref}: {actual}"
            assert expected.removeprefix("pending: ") in actual, f"{ref}: {actual}"
        else:
            assert actual == expected, f"{ref}: {actual}"


def counts(result: AllocationResult) -> dict[str, tuple[int, int, int, int]]:
    return {c.pool: (c.total_v4, c.assigned_v4, c.total_v6, c.assigned_v6) for c in result.pools}


def test_homelab() -> None:
    config = Config(
        pools=(pool("first-pool", "10.0.10.10-10.0.10.99"),),
        services=(svc("ingress-nginx/ingress-nginx-controller", ports=(80, 443)),
                  svc("pihole/pi-hole", ip="10.0.0.200", ports=("53/UDP", 80, 443))),
    )
    result = allocate(config)
    assert outcome(result, "ingress-nginx/ingress-nginx-controller", True) == "10.0.10.10@first-pool"
    assert result.pending[ServiceKey.parse("pihole/pi-hole")] == (
        "requested IP 10.0.0.200 is in no IPAddressPool (pools: first-pool 10.0.10.10-10.0.10.99)"
    )
    [first] = result.pools
    assert (first.total_v4, first.assigned_v4, first.available_v4) == (90, 1, 89)
    assert (first.total_v6, first.assigned_v6, first.available_v6) == (0, 0, 0)


@pytest.mark.parametrize(
    ("pools", "services", "expected"),
    [
        pytest.param((P1,), (svc("a", key="k", ports=(80,)), svc("b", key="k", ports=(443,)), svc("c")),
                     {"p": (10, 2, 0, 0)}, id="shared-ip-counts-once"),
        pytest.param((pool("p", "10.0.0.0/23", buggy=True),), (svc("a"),), {"p": (508, 1, 0, 0)},
                     id="avoid-buggy-shrinks-total"),
        pytest.param((pool("p", "10.0.0.0/8", buggy=True),), (), {"p": (2**24 - 2 * 2**16, 0, 0, 0)},
                     id="avoid-buggy-total-of-a-slash-8"),
        pytest.param((pool("d", "10.0.0.0/24", "fd00::/64"),), (svc("s", policy="RequireDualStack", families=(4, 6)),),
                     {"d": (256, 1, 2**63 - 1, 1)}, id="dual-stack-counts-per-family"),  # MetalLB caps a /64
        pytest.param((pool("a", "10.0.0.0/24"), pool("b", "10.0.1.0/24")), (svc("s", ip="10.0.1.7"),),
                     {"a": (256, 0, 0, 0), "b": (256, 1, 0, 0)}, id="counts-per-pool"),
    ],
)
def test_pool_counts(pools: tuple[IPAddressPool, ...], services: tuple[Service, ...],
                     expected: dict[str, tuple[int, int, int, int]]) -> None:
    assert counts(allocate(Config(pools=pools, services=services))) == expected


def test_dropped_previous_is_warned() -> None:
    result = allocate(Config(pools=(P1,), services=(svc("a"),)), {ServiceKey.parse("a"): ips("192.168.0.1")})
    assert any("default/a: dropping 192.168.0.1 from the state file" in w and "in no IPAddressPool" in w
               for w in result.warnings)


def test_status_differing_from_previous_is_warned() -> None:
    result = allocate(Config(pools=(P1,), services=(svc("a", status="10.0.0.17"),)),
                      {ServiceKey.parse("a"): ips("10.0.0.12")})
    assert any("differs from the state file" in w for w in result.warnings)


def test_result_keys_sorted_and_deterministic() -> None:
    services = tuple(svc(f"ns{i % 3}/s{i}") for i in range(20))
    first = allocate(Config(pools=(P1,), services=services))
    second = allocate(Config(pools=(P1,), services=tuple(reversed(services))))
    assert first == second
    keys = list(first.assignments) + list(first.pending)
    assert list(first.assignments) == sorted(first.assignments)
    assert len(keys) == 20


def test_huge_ipv6_pool_is_not_enumerated() -> None:
    """A /16 of IPv6 (2**112 addresses) allocates at once; enumerating would never finish."""
    services = tuple(svc(f"s{i:03}", families=(6,)) for i in range(100))
    config = Config(pools=(pool("big", "fd00::/16"),), services=services)
    result = allocate(config)
    assert outcome(result, "s099", False) == "fd00::63"
    assert counts(result)["big"] == (0, 0, 2**63 - 1, 100)  # MetalLB counts a huge range as the largest int64


def test_duplicate_names_first_wins() -> None:
    """Duplicate pools or Services are `check` errors; allocation still answers, first one wins."""
    config = Config(
        pools=(pool("p", "10.0.0.10"), pool("q", "10.0.5.5"), pool("p", "10.0.9.9")),
        services=(svc("a", ports=(80,)), svc("a", ports=(443,), ip="10.0.9.9")),
    )
    result = allocate(config)
    assert outcome(result, "a", True) == "10.0.0.10@p"
    assert counts(result) == {"p": (1, 1, 0, 0), "q": (1, 0, 0, 0)}


def test_pending_reason_is_as_of_the_final_state() -> None:
    """Found by hypothesis: a reason written at the Service's turn changed on the next run.

    At a/s1's turn only IPv6 is exhausted; a/s2 then takes the last IPv4. The reason
    must describe the end state (what a re-run sees), so both runs agree.
    """
    config = Config(
        pools=(pool("d", "10.0.0.1", "fd00::1"),),
        services=(svc("a/s0", families=(6,)), svc("a/s1", policy="RequireDualStack", families=(4, 6)), svc("a/s2")),
    )
    first = allocate(config)
    again = allocate(config, {k: a.ips for k, a in first.assignments.items()})
    reason = "no available IPs in pool d (1 of 1 IPv4 assigned, 1 of 1 IPv6 assigned)"
    assert first.pending == again.pending == {ServiceKey.parse("a/s1"): reason}
