"""MetalLB's `--lb-class` rule (`supervisor.config.lbclass`) and the places that ask it.

The rule: without a class an instance serves LoadBalancer Services without
`spec.loadBalancerClass`; with one, only that class; "" counts as no class.
The watcher, the status writer, the allocator and `metalloid plan` all ask
the same function, so the tests below check each of them against one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from supervisor.allocating.allocator import allocate
from supervisor.allocating.results import AllocationResult
from supervisor.config import lbclass
from supervisor.config.addresses import parse_address_range
from supervisor.config.model import AddressRange, Config, IPAddressPool, Service, ServiceKey
from supervisor.kubernetes.statuswriter import desired_for
from supervisor.kubernetes.watcher import build_config


@dataclass(frozen=True)
class Case:
    id: str
    service_type: str
    service_class: str | None
    lb_class: str | None
    ours: bool


CASES = [
    Case("default-instance-classless-service", "LoadBalancer", None, None, True),
    Case("default-instance-foreign-class", "LoadBalancer", "example.com/other", None, False),
    Case("class-instance-same-class", "LoadBalancer", "metalloid.io/lb", "metalloid.io/lb", True),
    Case("class-instance-classless-service", "LoadBalancer", None, "metalloid.io/lb", False),
    Case("class-instance-other-class", "LoadBalancer", "example.com/other", "metalloid.io/lb", False),
    Case("empty-flag-is-no-class", "LoadBalancer", None, "", True),
    Case("empty-flag-foreign-class", "LoadBalancer", "example.com/other", "", False),
    Case("not-a-load-balancer", "ClusterIP", None, None, False),
    Case("not-a-load-balancer-of-our-class", "NodePort", "metalloid.io/lb", "metalloid.io/lb", False),
]


def model(case: Case) -> Service:
    return Service(namespace="default", name="s", type=case.service_type, load_balancer_class=case.service_class)


def api_object(case: Case) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": case.service_type, "ports": [{"port": 80}]}
    if case.service_class is not None:
        spec["loadBalancerClass"] = case.service_class
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"}, "spec": spec}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_rule_on_the_model_and_on_raw_objects(case: Case) -> None:
    assert lbclass.is_ours(model(case), case.lb_class) is case.ours
    assert lbclass.is_ours_object(api_object(case), case.lb_class) is case.ours


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_allocator_serves_exactly_our_services(case: Case) -> None:
    addresses = parse_address_range("10.0.0.0/29")
    assert isinstance(addresses, AddressRange)
    config = Config(pools=(IPAddressPool(name="lan", addresses=(addresses,)),), services=(model(case),))
    result = allocate(config, lb_class=case.lb_class)
    assert (ServiceKey(namespace="default", name="s") in result.assignments) is case.ours


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_status_writer_touches_exactly_our_services(case: Case) -> None:
    key = ServiceKey(namespace="default", name="s")
    result = AllocationResult(assignments={}, pending={key: "no pool"}, pools={})
    desired = desired_for(api_object(case), result, lb_class=case.lb_class)
    assert (desired is not None and desired.pending == "no pool") is case.ours


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_watcher_hands_on_our_services_without_their_class(case: Case) -> None:
    config, _ = build_config([api_object(case)], lb_class=case.lb_class)
    # Services of our class that are not LoadBalancers stay (nobody allocates them): the class decides.
    kept = lbclass.serves(case.service_class, case.lb_class)
    assert [(s.name, s.load_balancer_class) for s in config.services] == ([("s", None)] if kept else [])


def test_our_class_is_validated_and_another_class_is_not() -> None:
    """With --lb-class, our Services get their warnings; another class's get none (it is not ours to judge)."""
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": "metallb-system"}, "spec": {"addresses": ["10.0.0.0/29"]}}

    def service(name: str, service_class: str) -> dict[str, Any]:
        obj = api_object(Case(name, "LoadBalancer", service_class, None, True))
        obj["metadata"] = {"name": name, "namespace": "default",
                           "annotations": {"metallb.io/address-pool": "missing"}}
        return obj

    _, diagnostics = build_config([pool, service("mine", "metalloid.io/lb"), service("foreign", "example.com/x")],
                                  lb_class="metalloid.io/lb")
    assert [d.name for d in diagnostics if d.kind == "Service"] == ["default/mine"]
