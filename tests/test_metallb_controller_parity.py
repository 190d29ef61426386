"""MetalLB's controller tests (controller/controller_test.go) against metalloid's parser and allocator.

TestControllerMutation feeds the controller one Service at a time and states
the status it must end with; MetalLB says "every input below should be
equivalent to a pure function", which is exactly what metalloid's
`allocate` is. Each case here is one Service, parsed from the same API object
the Go test builds (`spec.clusterIPs` become `spec.ipFamilies` in the same
order, which Kubernetes keeps in step), allocated against the test's twelve
pools. The sequences (TestControllerConfig, TestDeleteRecyclesIP,
TestControllerReassign, TestControllerDualStackConfig) are stories, see
tests/metallb_parity.py.

Expected outcomes: the IPs of `status.loadBalancer.ingress` in order;
"rejected" (MetalLB: an error Event and no IP; metalloid: a `check` error for
the Service or a pending reason); "absent" (not a LoadBalancer: nothing to
allocate).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from supervisor.allocating.allocator import allocate
from supervisor.config.model import Config, ServiceKey
from supervisor.config.parsing import parse_objects
from tests.metallb_parity import Cluster, Step, play, pool

GO = "controller/controller_test.go"

# TestControllerMutation's pools (pool1 and pool5 overlap, as in the Go test).
POOLS = (
    pool("pool1", "1.2.3.0/31"),
    pool("pool2", "3.4.5.6/32", auto=False),
    pool("pool3", "1000::/127"),
    pool("pool4", "2000::1/128", auto=False),
    pool("pool5", "1.2.3.0/31", "1000::/127"),
    pool("pool6", "7.8.9.0/31", namespaces=("test-ns1",), priority=10),
    pool("pool7", "10.11.12.0/31", namespaces=("test-ns1",), priority=11),
    pool("pool8", "13.14.15.0/31", selectors=({"team": "metallb"},), priority=9),
    pool("pool9", "16.17.18.0/31", namespaces=("test-ns2",)),
    pool("pool10", "19.20.21.0/31", selectors=({"team": "metallb"},), priority=8),
    pool("pool11", "22.23.24.0/31", namespaces=("test-ns1",), selectors=({"team": "metallb"},), priority=8),
    pool("pool12", "25.26.27.0/31", namespaces=("test-ns1",), selectors=({"team": "metallb"},), priority=5),
)


@dataclass(frozen=True, kw_only=True)
class Svc:
    """The parts of the Go test's `v1.Service` that matter, as an API object."""

    type: str = "LoadBalancer"
    cluster_ips: tuple[str, ...] = ("1.2.3.4",)
    policy: str | None = None
    lb_ip: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    local: bool = False
    ingress: tuple[dict[str, str], ...] = ()

    def obj(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type, "ports": [{"port": 8080, "protocol": "TCP"}]}
        if self.cluster_ips:
            spec["clusterIPs"] = list(self.cluster_ips)
            spec["ipFamilies"] = [f"IPv{ipaddress.ip_address(ip).version}" for ip in self.cluster_ips]
        if self.policy:
            spec["ipFamilyPolicy"] = self.policy
        if self.lb_ip is not None:
            spec["loadBalancerIP"] = self.lb_ip
        if self.local:
            spec["externalTrafficPolicy"] = "Local"
        meta: dict[str, Any] = {"name": "test", "namespace": self.namespace}
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        if self.labels:
            meta["labels"] = dict(self.labels)
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}
        if self.ingress:
            obj["status"] = {"loadBalancer": {"ingress": [dict(i) for i in self.ingress]}}
        return obj


def assigned(*ips: str) -> tuple[dict[str, str], ...]:
    return tuple({"ip": ip} for ip in ips)


IPS = "metallb.io/loadBalancerIPs"
POOL = "metallb.io/address-pool"
DUAL = ("1.2.3.4", "3000::1")
NO_CLUSTER_IP_DIFFERS = (
    "MetalLB waits while a LoadBalancer Service has no clusterIP (the API server always gives it one); "
    "metalloid allocates: standalone Services have no clusterIP at all"
)

MUTATION: list[tuple[str, Svc | None, str]] = [
    ("deleted balancer", None, "absent"),
    ("simple non-LoadBalancer", Svc(type="ClusterIP"), "absent"),
    ("simple LoadBalancer", Svc(), "1.2.3.0"),
    ("request specific IP", Svc(lb_ip="1.2.3.1"), "1.2.3.1"),
    ("request specific IP via custom annotation", Svc(annotations={IPS: "1.2.3.1"}), "1.2.3.1"),
    ("request IP from both svc.spec.LoadBalancerIP and custom annotation",
     Svc(annotations={IPS: "1.2.3.1"}, lb_ip="1.2.3.2"), "rejected"),
    ("request invalid IP", Svc(lb_ip="please sir may I have an IP address thank you"), "rejected"),
    ("incompatible ip and address pool annotations", Svc(annotations={IPS: "1.2.3.1", POOL: "pool2"}), "rejected"),
    ("request invalid IP via custom annotation",
     Svc(annotations={IPS: "please sir may I have an IP address thank you"}), "rejected"),
    ("request two IPs from same ip family via custom annotation", Svc(annotations={IPS: "1.2.3.1,1.2.3.2"}),
     "rejected"),
    ("request infeasible IP", Svc(lb_ip="1.2.3.4", ingress=assigned("1.2.3.1")), "rejected"),
    ("request IP from specific pool", Svc(annotations={POOL: "pool1"}), "1.2.3.0"),
    ("switch to a different specific pool", Svc(annotations={POOL: "pool2"}, ingress=assigned("1.2.3.0")),
     "3.4.5.6"),
    ("unknown pool requested", Svc(annotations={POOL: "does-not-exist"}), "rejected"),
    ("invalid IP assigned", Svc(ingress=assigned("2.3.4.5")), "1.2.3.0"),
    ("invalid ingress state", Svc(ingress=({"hostname": "foo.bar.local"}, {"ip": "10.10.10.10"})), "1.2.3.0"),
    ("former LoadBalancer, now NodePort", Svc(type="NodePort", ingress=assigned("1.2.3.0")), "absent"),
    ("request layer2 service", Svc(lb_ip="3.4.5.6"), "3.4.5.6"),
    ("Layer2 service with local traffic policy", Svc(lb_ip="3.4.5.6", local=True), "3.4.5.6"),
    ("No ClusterIP", Svc(cluster_ips=()), "1.2.3.0"),
    ("request IP from wrong ip-family (ipv4)", Svc(lb_ip="1.2.3.1", cluster_ips=("3000::1",)), "rejected"),
    ("request IP from wrong ip-family (ipv4) via custom annotation",
     Svc(annotations={IPS: "1.2.3.1"}, cluster_ips=("3000::1",)), "rejected"),
    ("request IP from wrong ip-family (ipv6)", Svc(lb_ip="1000::"), "rejected"),
    ("request IP from wrong ip-family (ipv6) via custom annotation", Svc(annotations={IPS: "1000::"}), "rejected"),
    ("IP from wrong ip-family (ipv6) assigned", Svc(ingress=assigned("1000::")), "1.2.3.0"),
    ("IP from wrong ip-family (ipv4) assigned", Svc(cluster_ips=("3000::1",), ingress=assigned("1.2.3.0")),
     "1000::"),
    ("simple dual-stack LoadBalancer", Svc(cluster_ips=DUAL, policy="RequireDualStack"), "1.2.3.0,1000::"),
    ("request IPs from specific pool", Svc(annotations={POOL: "pool5"}, cluster_ips=DUAL, policy="RequireDualStack"),
     "1.2.3.0,1000::"),
    ("simple dual-stack LoadBalancer with PreferDualStack policy", Svc(cluster_ips=DUAL, policy="PreferDualStack"),
     "1.2.3.0,1000::"),
    ("single-stack LoadBalancer with PreferDualStack policy", Svc(namespace="test-ns1", policy="PreferDualStack"),
     "7.8.9.0"),
    ("request IPs from dualstack pool with PreferDualStack policy",
     Svc(annotations={POOL: "pool5"}, cluster_ips=DUAL, policy="PreferDualStack"), "1.2.3.0,1000::"),
    ("request IP from single-stack ipv4 pool with PreferDualStack policy",
     Svc(annotations={POOL: "pool1"}, cluster_ips=("1.2.3.4", "1000::"), policy="PreferDualStack"), "1.2.3.0"),
    ("request IP from single-stack ipv6 pool with PreferDualStack policy",
     Svc(annotations={POOL: "pool3"}, cluster_ips=("1000::1",), policy="PreferDualStack"), "1000::"),
    ("request IPs from dualstack pool with PreferDualStack policy but single stack clusterip",
     Svc(annotations={POOL: "pool5"}, policy="PreferDualStack"), "1.2.3.0"),
    ("request IPs from dualstack pool with RequireDualStack policy but single stack clusterip",
     Svc(annotations={POOL: "pool5"}, policy="RequireDualStack"), "rejected"),
    ("request specific loadbalancer IP with dual-stack", Svc(cluster_ips=DUAL, lb_ip="1.2.3.1"), "rejected"),
    ("request specific loadbalancer IPv4 address via custom annotation for dual-stack config",
     Svc(annotations={IPS: "1.2.3.1"}, cluster_ips=DUAL), "rejected"),
    ("request dual-stack loadbalancer IPs via custom annotation",
     Svc(annotations={IPS: "1.2.3.0,1000::"}, cluster_ips=DUAL, policy="RequireDualStack"), "1.2.3.0,1000::"),
    ("request dual-stack loadbalancer with invalid ingress",
     Svc(cluster_ips=("3000::1", "5.6.7.8"), policy="RequireDualStack",
         ingress=({"hostname": "foo.bar.local"}, {"ip": "1000::"})), "1.2.3.0,1000::"),
    ("request dual-stack loadbalancer IPs via custom annotation in a single stack cluster",
     Svc(annotations={IPS: "1.2.3.0,1000::"}), "rejected"),
    ("request IP for service from namespace specific ip pool", Svc(namespace="test-ns1"), "7.8.9.0"),
    ("request IP for service from no priority namespace specific ip pool", Svc(namespace="test-ns2"),
     "16.17.18.0"),
    ("request IP for service from service label specific ip pool", Svc(labels={"team": "metallb"}), "19.20.21.0"),
    ("request IP for service from ip pool having both namespace and service label",
     Svc(namespace="test-ns1", labels={"team": "metallb"}), "25.26.27.0"),
    ("simple LoadBalancer, ips already assigned but can't determine family",
     Svc(ingress=assigned("1.2.3.0", "1.2.3.1", "1.2.3.2")), "1.2.3.0 +warning"),
]  # fmt: skip
DIFFERS = {"No ClusterIP": NO_CLUSTER_IP_DIFFERS}


@pytest.mark.parametrize(("desc", "svc", "expected"), MUTATION, ids=[m[0] for m in MUTATION])
def test_controller_mutation(desc: str, svc: Svc | None, expected: str) -> None:
    """TestControllerMutation: one Service against the twelve pools; see DIFFERS for the one deliberate difference."""
    objects = [svc.obj()] if svc else []
    parsed, diagnostics = parse_objects(objects)
    config = Config(pools=POOLS, services=parsed.services)
    result = allocate(config)
    key = ServiceKey(namespace=svc.namespace if svc else "default", name="test")
    errors = [d for d in diagnostics if d.is_error and d.kind == "Service"]
    if expected == "absent":
        assert key not in result.assignments and key not in result.pending and not errors
        return
    if expected == "rejected":
        if errors:
            # Refused when the object is read; what runs with it is per-object fault isolation's concern.
            assert all(e.name.endswith("/test") for e in errors), [str(e) for e in errors]
            return
        assert key in result.pending and key not in result.assignments, (desc, result.assignments.get(key))
        return
    ips, _, warning = expected.partition(" +")
    assert not errors, [str(e) for e in errors]
    assert [str(ip) for ip in result.ips_of(key)] == ips.split(","), (desc, result.pending.get(key))
    if warning:  # MetalLB's Errorf; its Infof ClearAssignment (an IP dropped) is a warning line here too
        assert any("dropping" in w for w in result.warnings), result.warnings


# --- the sequences -----------------------------------------------------------------------------------------


def test_controller_config() -> None:
    """TestControllerConfig: no pool, no IP; a pool, 1.2.3.0; the pool removed, the IP goes with it."""
    cluster = Cluster(pools=())
    play(cluster, [Step(desc="no config: nothing to give", svc="test", family="ipv4", expect="err")])
    cluster.services["test"] = Step(desc="", svc="test", family="ipv4").service()
    cluster.pools = (pool("default", "1.2.3.0/24"),)
    cluster.run()
    assert [str(ip) for ip in cluster.holds("test")] == ["1.2.3.0"]
    cluster.pools = ()
    result = cluster.run()
    assert cluster.holds("test") == () and cluster.key("test") in result.pending


def test_delete_recycles_ip() -> None:
    """TestDeleteRecyclesIP: one IP; the second Service waits, and gets it when the first is deleted."""
    cluster = Cluster(pools=(pool("default", "1.2.3.0/32"),))
    play(cluster, [
        Step(desc="svc1 gets the only IP", svc="test", family="ipv4", expect="=1.2.3.0"),
        Step(desc="svc2 converges without an IP", svc="test2", family="ipv4", expect="err"),
    ])  # fmt: skip
    cluster.services["test2"] = Step(desc="", svc="test2", family="ipv4").service()  # still there, pending
    cluster.run()
    play(cluster, [Step(desc="deleting svc1", svc="test", unassign=True)])
    assert [str(ip) for ip in cluster.holds("test2")] == ["1.2.3.0"]


def test_controller_reassign() -> None:
    """TestControllerReassign: a new pool changes nothing; deleting the pool moves the Service to the other one."""
    cluster = Cluster(pools=(pool("default", "1.2.3.0/24", "1000::/127"),))
    play(cluster, [Step(desc="first allocation", svc="test", family="ipv4", expect="=1.2.3.0")])
    cluster.pools = (pool("default", "1.2.3.0/24", "1000::/127"), pool("second", "4.5.6.0/24"))
    cluster.run()
    assert [str(ip) for ip in cluster.holds("test")] == ["1.2.3.0"]
    cluster.pools = (pool("second", "4.5.6.0/24"),)
    cluster.run()
    assert [str(ip) for ip in cluster.holds("test")] == ["4.5.6.0"]


def test_controller_dual_stack_config() -> None:
    """TestControllerDualStackConfig: RequireDualStack gets IPv4 then IPv6 (the Go helper masks 1000::1/127)."""
    cluster = Cluster(pools=())
    play(cluster, [Step(desc="no config yet", svc="test", family="dual", policy="RequireDualStack", expect="err")])
    cluster.pools = (pool("default", "1.2.3.0/24", "1000::/127"),)
    play(cluster, [Step(desc="with the pool", svc="test", family="dual", policy="RequireDualStack",
                        expect="=1.2.3.0,1000::")])  # fmt: skip
