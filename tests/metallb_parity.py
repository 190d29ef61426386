"""Shared vocabulary for the MetalLB parity tables (tests/test_metallb_*_parity.py).

MetalLB's allocator tests drive a stateful object call by call (`Assign`,
`Allocate`, `AllocateFromPool`, `Unassign`, `SetPools`); its controller tests
feed one Service at a time. metalloid's core is one pure function over the
whole cluster, `allocate(config)`. A ported case is therefore a *story*: a
list of steps, each changing the cluster (a Service asks for something, goes
away, the pools change) and stating what MetalLB's test expects right after.
Between steps the Services keep what they got in `status.loadBalancer.ingress`,
as the controller writes it, which is how metalloid (and MetalLB) remember.

Translation rules (facts carried over, not code):
- MetalLB's service key `s1` is the Service `default/s1` (or the namespace
  the Go test gives its Service object).
- `ipFamily` (MetalLB reads it from `spec.clusterIPs`) becomes
  `spec.ipFamilies`, which Kubernetes fills in the same order: ipv4 → [IPv4],
  ipv6 → [IPv6], dual → [IPv4, IPv6].
- `backendKey` strings become what produces them in MetalLB's `BackendKey`:
  "" is externalTrafficPolicy Cluster, "X" is Local with selector `backend: X`.
- `Assign(ips)` is a Service asking for those IPs (`metallb.io/loadBalancerIPs`);
  `Allocate` asks for nothing; `AllocateFromPool(p)` names the pool.
- A step MetalLB expects to fail leaves MetalLB's allocator unchanged, so the
  story continues from the state before that step (the Service's request is
  rolled back), after checking that metalloid refused it too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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

FAMILIES = {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}


def cidr(text: str) -> AddressRange:
    parsed = parse_address_range(text)
    assert isinstance(parsed, AddressRange), parsed
    return parsed


def pool(
    name: str,
    *cidrs: str,
    auto: bool = True,
    buggy: bool = False,
    priority: int | None = None,
    namespaces: tuple[str, ...] = (),
    selectors: tuple[Mapping[str, str], ...] = (),
    allocation: bool | None = None,
) -> IPAddressPool:
    """A pool as MetalLB's tests write `config.Pool`; `allocation` forces a (possibly empty) serviceAllocation."""
    pinned = allocation if allocation is not None else bool(priority or namespaces or selectors)
    return IPAddressPool(
        name=name,
        addresses=tuple(cidr(c) for c in cidrs),
        auto_assign=auto,
        avoid_buggy_ips=buggy,
        service_allocation=ServiceAllocation(
            priority=priority,
            namespaces=namespaces,
            service_selectors=tuple(LabelSelector(match_labels=labels_of(s)) for s in selectors),
        ) if pinned else None,
    )  # fmt: skip


def ports_of(text: str) -> tuple[ServicePort, ...]:
    """MetalLB's `ports("tcp/80", ...)` helper, as "tcp/80 udp/53"."""
    out = []
    for item in text.split():
        protocol, _, number = item.partition("/")
        out.append(ServicePort(port=int(number), protocol=protocol.upper()))
    return tuple(out)


def ip_list(text: str) -> tuple[IPAddress, ...]:
    return tuple(ipaddress.ip_address(t.strip()) for t in text.split(",") if t.strip())


@dataclass(frozen=True, kw_only=True)
class Step:
    """One call of MetalLB's test, as a change to the cluster and what must hold after it.

    `ips`: the IPs asked for (Assign), or "" to ask for nothing (Allocate).
    `expect`: "ok" (Assign: holds exactly `ips`), "err" (refused), or for
    Allocate the IPs it may get, "1.2.3.4|1.2.3.5" (each IP must be one of
    them), or "=1.2.3.0" for exactly these IPs in this order.
    `differs`: metalloid deliberately decides otherwise; the text says how,
    and `expect` states metalloid's answer.
    """

    desc: str
    svc: str
    ips: str = ""
    expect: str = "ok"
    unassign: bool = False
    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    family: str = ""
    policy: str = "SingleStack"
    pool: str | None = None
    ports: str = ""
    sharing: str = ""
    backend: str = ""
    differs: str = ""

    def service(self) -> Service:
        requested = ip_list(self.ips)
        families = FAMILIES[self.family] if self.family else tuple(dict.fromkeys(ip.version for ip in requested))
        policy = self.policy
        if len(families) == 2 and policy == "SingleStack":
            policy = "RequireDualStack"  # Kubernetes gives two families only to a dual-stack policy
        return Service(
            namespace=self.namespace,
            name=self.svc,
            labels=labels_of(self.labels),
            selector=labels_of({"backend": self.backend}) if self.backend else (),
            ports=ports_of(self.ports),
            requested_ips=requested,
            requested_pool=self.pool,
            sharing_key=self.sharing or None,
            ip_families=families or (4,),
            ip_family_policy=IPFamilyPolicy(policy),
            external_traffic_policy=ExternalTrafficPolicy.LOCAL if self.backend else ExternalTrafficPolicy.CLUSTER,
        )


@dataclass
class Cluster:
    """The Services of a story and their status, as the controller leaves them."""

    pools: tuple[IPAddressPool, ...]
    namespaces: tuple[Namespace, ...] = ()
    services: dict[str, Service] = field(default_factory=dict)
    last: AllocationResult | None = None

    def run(self) -> AllocationResult:
        config = Config(pools=self.pools, services=tuple(self.services.values()), namespaces=self.namespaces)
        result = allocate(config)
        # The controller writes what it decided into each Service's status.
        for name, service in self.services.items():
            self.services[name] = replace(service, status_ips=result.ips_of(service.key))
        self.last = result
        return result

    def key(self, name: str) -> ServiceKey:
        return self.services[name].key

    def holds(self, name: str) -> tuple[IPAddress, ...]:
        service = self.services.get(name)
        return service.status_ips if service else ()


def play(cluster: Cluster, steps: Sequence[Step]) -> None:
    """Run a story; every failed expectation names its step."""
    for step in steps:
        before = dict(cluster.services)
        if step.unassign:
            cluster.services.pop(step.svc, None)
            cluster.run()
            continue
        existing = cluster.services.get(step.svc)
        service = step.service()
        if existing is not None and existing.key == service.key:
            service = replace(service, status_ips=existing.status_ips)
        else:
            cluster.services.pop(step.svc, None)
        cluster.services[step.svc] = service
        result = cluster.run()
        check(step, cluster, result)
        if step.expect == "err":
            cluster.services = before  # MetalLB's allocator is unchanged by a failed call
            cluster.run()


def check(step: Step, cluster: Cluster, result: AllocationResult) -> None:
    key = cluster.key(step.svc)
    got = cluster.holds(step.svc)
    where = f"{step.desc!r}: {key} holds {[str(i) for i in got]}, pending: {result.pending.get(key)}"
    if step.expect == "err":
        assert key in result.pending and not got, where
    elif step.expect == "ok":
        assert set(got) == set(ip_list(step.ips)) and key not in result.pending, where
    elif step.expect.startswith("="):
        assert got == ip_list(step.expect[1:]), where
    else:
        allowed = set(ip_list(step.expect.replace("|", ",")))
        assert got and set(got) <= allowed, where
        wanted = FAMILIES[step.family] if step.family else (4,)
        if step.policy != "PreferDualStack":
            assert sorted(ip.version for ip in got) == sorted(wanted), where
