"""The controller's Events carry MetalLB's reasons and texts (controller/service.go, controller/main.go)."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from supervisor.allocating.results import AllocationResult, Assignment
from supervisor.config.model import ServiceKey
from supervisor.config.parsing import parse_objects
from supervisor.kubernetes.statuswriter import StatusWriter, go_ips
from tests.test_k8s_status_writer_events import RecordingClient

KEY = ServiceKey(namespace="default", name="web")


def svc(*ips: str, uid: str = "u1", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": uid, "resourceVersion": "1"},
        "spec": {"type": "LoadBalancer", **spec},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}} if ips else {},
    }


def assigned(*ips: str) -> AllocationResult:
    return AllocationResult(
        assignments={KEY: Assignment(service=KEY, ips=tuple(map(ip_address, ips)), pool="first-pool")},
        pending={}, pools=(),
    )  # fmt: skip


def events(client: RecordingClient) -> list[tuple[str, str, str]]:
    return sorted((e["type"], e["reason"], e["message"]) for e in client.events.values())


def test_go_formats_ip_lists_as_metallb_prints_them() -> None:
    assert go_ips(["10.0.10.10"]) == '["10.0.10.10"]'
    assert go_ips(["10.0.10.10", "fd00::10"]) == '["10.0.10.10" "fd00::10"]'


def test_ip_allocated_and_allocation_failed_texts() -> None:
    client = RecordingClient()
    StatusWriter(client).apply(assigned("10.0.10.10", "fd00::10"), [svc()])  # type: ignore[arg-type]
    pending = AllocationResult(assignments={}, pending={KEY: "no available IPs in pool first-pool"}, pools=())
    StatusWriter(client).apply(pending, [svc(uid="u2")])  # type: ignore[arg-type]
    assert events(client) == [
        ("Normal", "IPAllocated", 'Assigned IP ["10.0.10.10" "fd00::10"]'),
        ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/web": no available IPs in pool first-pool'),
    ]


def test_an_ip_the_config_no_longer_allows_is_cleared_with_metallbs_reason_then_reallocated() -> None:
    client = RecordingClient()
    StatusWriter(client).apply(assigned("10.0.20.1"), [svc("10.0.10.10")])  # type: ignore[arg-type]
    assert events(client) == [
        ("Normal", "ClearAssignment", 'current IP for "default/web" not allowed by config, will attempt for new IP '
         'assignment: ["10.0.10.10"] no longer in a pool this Service may use'),
        ("Normal", "IPAllocated", 'Assigned IP ["10.0.20.1"]'),
    ]  # fmt: skip


def test_deprecated_annotation_text_and_prefer_dual_stack_without_the_second_family() -> None:
    client = RecordingClient()
    obj = svc(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"])
    obj["metadata"]["annotations"] = {"metallb.universe.tf/loadBalancerIPs": "10.0.10.10"}
    writer = StatusWriter(client)  # type: ignore[arg-type]
    writer.apply(assigned("10.0.10.10"), [obj])
    writer.apply(assigned("10.0.10.10"), [obj])  # a repeat reconcile adds nothing
    assert events(client) == [
        ("Normal", "AdditionalAssignFailed",
         "cannot assign additional IP in PreferDualStack: no IPv6 address available in pool first-pool"),
        ("Normal", "IPAllocated", 'Assigned IP ["10.0.10.10"]'),
        ("Warning", "deprecatedAnnotation", "Service uses deprecated annotation metallb.universe.tf/loadBalancerIPs"),
    ]  # fmt: skip


def test_a_config_warning_is_a_warning_event_on_its_object_once() -> None:
    client = RecordingClient()
    writer = StatusWriter(client)  # type: ignore[arg-type]
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "first-pool", "namespace": "metallb-system", "uid": "p1"},
            "spec": {"addresses": ["10.0.10.10/24"]}}  # fmt: skip
    _config, diagnostics = parse_objects([pool])
    (host_bits,) = diagnostics
    assert not host_bits.is_error
    writer.report_warnings([host_bits], [pool])
    writer.report_warnings([host_bits], [pool])  # on change only
    assert events(client) == [("Warning", "ConfigurationWarning", host_bits.message)]
    [warned] = client.events.values()
    assert warned["involvedObject"]["kind"] == "IPAddressPool"


def test_prefer_dual_stack_gaining_its_second_family_is_an_additional_ip() -> None:
    """MetalLB: `Assigned additional IP %q` when a PreferDualStack Service keeps its IP and gets the other family."""
    client = RecordingClient()
    obj = svc("10.0.10.10", ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"])
    StatusWriter(client).apply(assigned("10.0.10.10", "fd00::10"), [obj])  # type: ignore[arg-type]
    assert events(client) == [("Normal", "IPAllocated", 'Assigned additional IP "fd00::10"')]


def test_require_dual_stack_without_two_cluster_ips_says_only_not_enough_clusterips() -> None:
    client = RecordingClient()
    obj = svc(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4"], clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    pending = AllocationResult(assignments={}, pending={KEY: "RequireDualStack but spec.ipFamilies lists only IPv4"},
                               pools=())  # fmt: skip
    StatusWriter(client).apply(pending, [obj])  # type: ignore[arg-type]
    assert events(client) == [
        ("Warning", "not enough clusterips", "Service requires dual stack but not enough clusterips [10.96.0.10]")]


def test_status_ips_of_one_family_twice_are_nolbipsipfamily_then_replaced() -> None:
    client = RecordingClient()
    obj = svc("10.0.10.10", "10.0.10.11", clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    StatusWriter(client).apply(assigned("10.0.10.10"), [obj])  # type: ignore[arg-type]
    (family,) = [e for e in events(client) if e[1] == "nolbIPsIPFamily"]
    assert family == ("Warning", "nolbIPsIPFamily",
                      'Failed to retrieve LBIPs IPFamily for ["10.0.10.10" "10.0.10.11"]: '
                      'IPFamilyForAddresses: same address family ["10.0.10.10" "10.0.10.11"]')  # fmt: skip
    assert ("PATCH", "/api/v1/namespaces/default/services/web/status") in client.calls  # replaced


def test_cluster_ips_of_one_family_twice_are_noclusteripsipfamily() -> None:
    client = RecordingClient()
    obj = svc("10.0.10.10", clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "10.96.0.11"])
    StatusWriter(client).apply(assigned("10.0.10.10"), [obj])  # type: ignore[arg-type]
    assert events(client) == [
        ("Warning", "noclusterIPsIPFamily", 'Failed to retrieve ClusterIPs IPFamily for ["10.96.0.10" "10.96.0.11"] '
         '10.96.0.10: IPFamilyForAddresses: same address family ["10.96.0.10" "10.96.0.11"]')]  # fmt: skip


def test_family_texts_follow_metallbs_ipfamily_errors() -> None:
    from supervisor.kubernetes.families import family_events, family_problem

    assert family_problem(["10.0.0.1"]) is None and family_problem(["10.0.0.1", "fd00::1"]) is None
    assert family_problem(["10.0.0.1", "fd00::1", "10.0.0.2"]) == (
        'IPFamilyForAddresses: invalid ips length 3 ["10.0.0.1" "fd00::1" "10.0.0.2"]')
    assert family_problem(["<nil>"]) == 'IPFamilyForAddresses: Invalid address ["<nil>"]'
    # An unreadable status IP is net.ParseIP's nil, printed "<nil>" as MetalLB prints it.
    (found,) = family_events(svc(clusterIP="10.96.0.10"), ["not-an-ip"])
    assert found == ("nolbIPsIPFamily",
                     'Failed to retrieve LBIPs IPFamily for ["<nil>"]: IPFamilyForAddresses: Invalid address ["<nil>"]')
    # No clusterIP yet: MetalLB waits silently.
    assert family_events(svc(ipFamilyPolicy="RequireDualStack"), []) == []
