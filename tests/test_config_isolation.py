"""Per-object fault isolation (issue 11): the pure split between config errors and Service errors.

A config-level error (pool, advertisement, YAML, Settings, Node) rejects the
config, as MetalLB's config controller does; an error about one Service marks
that Service (`Service.problem`) and the allocator leaves it alone, as MetalLB's
service controller does (AllocationFailed, or LoadBalancerFailed when it keeps
the IP it held).
"""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from supervisor.allocating.allocator import allocate
from supervisor.config.diagnostics import Severity, error, warning
from supervisor.config.isolation import config_errors, isolate, object_errors
from supervisor.config.loading import load_config, load_text
from supervisor.config.model import Config, ServiceKey, Source
from supervisor.config.parsing import parse_documents, parse_objects
from supervisor.config.validation import validate
from supervisor.kubernetes.watcher import build_config

POOL_AND_L2 = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: [10.0.0.0/29]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
"""


def service(name: str, *, spec: str = "", annotations: str = "", status_ip: str | None = None) -> str:
    meta = f"\n  annotations: {{{annotations}}}" if annotations else ""
    status = f"\nstatus:\n  loadBalancer:\n    ingress: [{{ip: {status_ip}}}]" if status_ip else ""
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: {name}
          namespace: default""") + meta + "\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]" + (
        f"\n  {spec}" if spec else "") + status + "\n"


def parse(text: str) -> tuple[Config, list[str], list[str]]:
    docs, problems = load_text(text, file="c.yaml")
    config, diagnostics = parse_documents(docs)
    diagnostics = [*problems, *diagnostics, *validate(config)]
    return isolate(config, diagnostics), [str(d) for d in config_errors(diagnostics)], [
        str(d) for d in object_errors(diagnostics)]


BOTH = 'metallb.io/loadBalancerIPs: "10.0.0.3"'

# (id, the Service's spec line, its annotations, a fragment of its problem)
SERVICE_PROBLEMS = [
    ("both-ip-fields", "loadBalancerIP: 10.0.0.2", BOTH,
     "both spec.loadBalancerIP (10.0.0.2) and annotation metallb.io/loadBalancerIPs (10.0.0.3) are set"),
    ("unparsable-annotation", "", 'metallb.io/loadBalancerIPs: "10.0.0.x"',
     'annotation metallb.io/loadBalancerIPs: "10.0.0.x" is not an IP address'),
    ("unparsable-spec-ip", "loadBalancerIP: ten", "", 'spec.loadBalancerIP: "ten" is not an IP address'),
    ("family-mismatch", "ipFamilies: [IPv4]", 'metallb.io/loadBalancerIPs: "fd00::5"',
     "requested IP fd00::5 is IPv6 but the Service's ipFamilies are IPv4"),
    ("three-ips", "", 'metallb.io/loadBalancerIPs: "10.0.0.1,10.0.0.2,fd00::1"', "at most one IPv4 and one IPv6"),
    ("bad-family-policy", "ipFamilyPolicy: Dual", "", "spec.ipFamilyPolicy: unknown value \"Dual\""),
]


@pytest.mark.parametrize(("spec", "annotations", "fragment"), [p[1:] for p in SERVICE_PROBLEMS],
                         ids=[p[0] for p in SERVICE_PROBLEMS])
def test_a_service_error_marks_that_service_only(spec: str, annotations: str, fragment: str) -> None:
    config, rejecting, confined = parse(POOL_AND_L2 + service("bad", spec=spec, annotations=annotations)
                                        + service("good"))
    assert rejecting == []
    assert any(fragment in e and e.startswith("c.yaml:") and "Service/default/bad:" in e for e in confined), confined
    bad, good = config.service(ServiceKey(namespace="default", name="bad")), config.service(
        ServiceKey(namespace="default", name="good"))
    assert bad is not None and bad.problem is not None and fragment in bad.problem
    assert good is not None and good.problem is None
    result = allocate(config)
    assert result.pending[bad.key] == bad.problem and result.problems == {bad.key: bad.problem}
    assert result.ips_of(good.key) == (ipaddress.ip_address("10.0.0.0"),)


def test_several_errors_of_one_service_are_all_in_its_problem() -> None:
    config, _, confined = parse(POOL_AND_L2 + service("bad", spec="loadBalancerIP: ten\n  ipFamilyPolicy: Dual"))
    (bad,) = config.services
    assert len(confined) == 2 and bad.problem is not None
    assert bad.problem.startswith('spec.ipFamilyPolicy: unknown value "Dual"') or bad.problem.startswith(
        'spec.loadBalancerIP: "ten"')
    assert "(and 1 more: " in bad.problem


# (id, text, a fragment of the config-level error)
CONFIG_PROBLEMS = [
    ("bad-cidr", POOL_AND_L2.replace("10.0.0.0/29", "10.0.0.0/33"), "'10.0.0.0/33' is not a valid CIDR"),
    ("netmask-cidr", POOL_AND_L2.replace("10.0.0.0/29", "10.0.0.0/255.255.255.248"), "is not a valid CIDR"),
    ("overlap", POOL_AND_L2 + "---\n" + POOL_AND_L2.split("---")[0].replace("name: lan", "name: lan2"),
     "overlaps IPAddressPool/lan"),
    ("bad-selector", POOL_AND_L2 + "spec:\n  nodeSelectors: [{matchExpressions: [{key: a, operator: Near}]}]\n",
     "Near"),
    ("yaml", POOL_AND_L2 + "---\nkind: [\n", "YAML/syntax"),
    ("settings", POOL_AND_L2 + "---\napiVersion: metalloid.io/v1alpha1\nkind: Settings\nmetadata: {name: s}\n"
     "spec: {refreshSeconds: -1}\n", "Settings/s"),
]


@pytest.mark.parametrize(("text", "fragment"), [p[1:] for p in CONFIG_PROBLEMS], ids=[p[0] for p in CONFIG_PROBLEMS])
def test_a_config_object_error_rejects_the_whole_config(text: str, fragment: str) -> None:
    _, rejecting, _ = parse(text + service("good"))
    assert any(fragment in e for e in rejecting), rejecting


def test_load_config_keeps_the_parsed_objects_and_says_whether_it_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(POOL_AND_L2 + service("bad", spec="loadBalancerIP: 10.0.0.2", annotations=BOTH)
                    + service("good"))
    loaded = load_config([str(path)])
    assert not loaded.rejected and [s.name for s in loaded.config.services if s.problem] == ["bad"]
    assert [d.severity for d in loaded.diagnostics] == [Severity.ERROR]
    path.write_text(POOL_AND_L2.replace("10.0.0.0/29", "10.0.0.0/33") + service("good"))
    loaded = load_config([str(path)])
    assert loaded.rejected and [s.name for s in loaded.config.services] == ["good"]


def test_a_service_that_held_an_ip_keeps_it_when_its_spec_turns_invalid() -> None:
    # MetalLB's convergeBalancer: the held IP passes Assign, then getDesiredLbIPs
    # fails (LoadBalancerFailed) and the status is left as it was.
    config, _, _ = parse(POOL_AND_L2 + service("bad", spec="loadBalancerIP: 10.0.0.2", annotations=BOTH,
                                               status_ip="10.0.0.5") + service("new", spec="loadBalancerIP: bad"))
    result = allocate(config)
    bad, new = ServiceKey(namespace="default", name="bad"), ServiceKey(namespace="default", name="new")
    assert result.ips_of(bad) == (ipaddress.ip_address("10.0.0.5"),) and bad not in result.pending
    assert "both spec.loadBalancerIP" in result.problems[bad]
    assert result.ips_of(new) == () and "is not an IP address" in result.pending[new]


def test_a_later_duplicate_service_is_dropped_and_its_error_does_not_mark_the_first() -> None:
    config, rejecting, confined = parse(POOL_AND_L2 + service("web") + service("web", spec="loadBalancerIP: x"))
    assert rejecting == [] and any("a second Service named 'web'" in e for e in confined)
    (web,) = config.services
    assert web.problem is None


def test_errors_of_other_kinds_are_config_errors_warnings_are_neither() -> None:
    source = Source(file="f", line=1)
    diagnostics = [error(source, "IPAddressPool", "p", "x"), error(source, "Service", "a/b", "y"),
                   error(source, "EndpointSlice", "a/s", "z"), warning(source, "Service", "a/c", "w"),
                   error(source, "Node", "n1", "not listed")]
    assert [d.kind for d in config_errors(diagnostics)] == ["IPAddressPool", "Node"]
    assert [d.kind for d in object_errors(diagnostics)] == ["Service", "EndpointSlice"]


def api_service(name: str, **spec: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default", "annotations": {
        "metallb.io/loadBalancerIPs": "10.0.0.3"} if spec.pop("both", False) else {}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec}}


def test_kubernetes_objects_are_isolated_the_same_way() -> None:
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "lan",
            "namespace": "metallb-system"}, "spec": {"addresses": ["10.0.0.0/29"]}}
    objects = [pool, api_service("bad", loadBalancerIP="10.0.0.2", both=True), api_service("good")]
    config, diagnostics = build_config(objects, lb_class=None)
    assert config_errors(diagnostics) == []
    assert {s.name: s.problem is not None for s in config.services} == {"bad": True, "good": False}
    assert [str(d).split(": ", 2)[:2] for d in object_errors(diagnostics)] == [["kubernetes:0", "Service/default/bad"]]
    broken = {**pool, "spec": {"addresses": ["10.0.0.0/33"]}}
    _, diagnostics = build_config([broken, api_service("good")], lb_class=None)
    assert [d.kind for d in config_errors(diagnostics)] == ["IPAddressPool"]
    # parse_objects alone does not isolate: the watcher and the loader do.
    raw, _ = parse_objects(objects)
    assert all(s.problem is None for s in raw.services)


def test_errors_of_another_load_balancer_class_are_not_ours() -> None:
    other = api_service("foreign", loadBalancerIP="10.0.0.2", both=True)
    other["spec"]["loadBalancerClass"] = "example.com/other"  # type: ignore[index]
    config, diagnostics = build_config([other, api_service("bad", loadBalancerIP="x")], lb_class=None)
    assert [s.name for s in config.services] == ["bad"]
    assert [d.name for d in object_errors(diagnostics)] == ["default/bad"]
