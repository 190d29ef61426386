"""Parsing: every field of every kind, line numbers, YAML quirks, and garbage that must not crash."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.config.diagnostics import Diagnostic, Severity
from supervisor.config.loading import load_config_files, load_documents, load_text
from supervisor.config.model import (
    Config,
    ExternalTrafficPolicy,
    IPFamilyPolicy,
    LabelSelector,
    SelectorOperator,
    SelectorRequirement,
    field_source,
)
from supervisor.config.parsing import parse_documents, parse_objects
from supervisor.config.validation import validate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ip = ipaddress.ip_address


def parse(text: str, file: str = "t.yaml") -> tuple[Config, list[Diagnostic]]:
    docs, problems = load_text(textwrap.dedent(text), file=file)
    config, more = parse_documents(docs)
    return config, problems + more


def errors(diagnostics: list[Diagnostic]) -> list[str]:
    return [str(d) for d in diagnostics if d.severity is Severity.ERROR]


def warnings(diagnostics: list[Diagnostic]) -> list[str]:
    return [str(d) for d in diagnostics if d.severity is Severity.WARNING]


def test_homelab_example_parses_into_first_pool_with_90_addresses() -> None:
    config, diagnostics = load_config_files([str(EXAMPLES / "homelab.yaml")])
    assert config is not None, diagnostics
    assert errors(diagnostics) == []
    pool = config.pool("first-pool")
    assert pool is not None
    assert sum(r.size for r in pool.addresses) == 90
    assert [s.name for s in config.services] == ["ingress-nginx-controller", "pi-hole"]
    assert config.services[1].requested_ips == (ip("10.0.0.200"),)
    assert [n.name for n in config.nodes] == ["n1", "n2", "n3"]
    assert config.nodes[0].addresses == (ip("10.0.10.1"),)
    assert config.l2_advertisements[0].ip_address_pools == ("first-pool",)


POOL = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: p
  namespace: lb
  labels: {tier: gold}
spec:
  addresses:
    - 10.0.0.0/30
    - 10.0.1.10 - 10.0.1.19
    - 10.0.2.7
    - fd00::/126
    - fd00:1::1-fd00:1::3
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 5
    namespaces: [a, b]
    namespaceSelectors:
      - matchLabels: {env: prod}
    serviceSelectors:
      - matchExpressions:
          - {key: expose, operator: NotIn, values: [private]}
"""


def test_pool_every_field() -> None:
    config, diagnostics = parse(POOL)
    # Both are MetalLB incompatibilities metalloid accepts, with a warning.
    assert [(d.severity, d.source.line) for d in diagnostics] == [(Severity.WARNING, 5), (Severity.WARNING, 11)]
    assert "MetalLB's webhook refuses" in diagnostics[0].message
    assert "'10.0.2.7' is a single IP" in diagnostics[1].message
    (pool,) = config.pools
    assert (pool.name, pool.namespace, pool.labels) == ("p", "lb", (("tier", "gold"),))
    assert [(str(r.first), str(r.last), r.size) for r in pool.addresses] == [
        ("10.0.0.0", "10.0.0.3", 4),
        ("10.0.1.10", "10.0.1.19", 10),
        ("10.0.2.7", "10.0.2.7", 1),
        ("fd00::", "fd00::3", 4),
        ("fd00:1::1", "fd00:1::3", 3),
    ]
    assert pool.auto_assign is False and pool.avoid_buggy_ips is True
    allocation = pool.service_allocation
    assert allocation is not None
    assert allocation.priority == 5 and allocation.namespaces == ("a", "b")
    assert allocation.namespace_selectors == (LabelSelector(match_labels=(("env", "prod"),)),)
    assert allocation.service_selectors == (LabelSelector(match_expressions=(
        SelectorRequirement(key="expose", operator=SelectorOperator.NOT_IN, values=("private",)),)),)
    assert pool.source.line == 1
    assert field_source(pool.source, pool.field_lines, "spec.addresses[2]").line == 11
    assert field_source(pool.source, pool.field_lines, "spec.autoAssign").line == 14


def test_pool_defaults() -> None:
    config, diagnostics = parse("""\
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: p}
        spec: {addresses: [10.0.0.1/32]}
        """)
    assert diagnostics == []
    (pool,) = config.pools
    assert (pool.namespace, pool.auto_assign, pool.avoid_buggy_ips, pool.service_allocation) == (
        "metallb-system", True, False, None)


def test_l2_advertisement_every_field_and_empty_spec() -> None:
    config, diagnostics = parse("""\
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: a}
        spec:
          ipAddressPools: [p1, p2]
          ipAddressPoolSelectors:
            - matchLabels: {tier: gold}
          nodeSelectors:
            - matchExpressions:
                - {key: ingress, operator: Exists}
          interfaces: [eth0, eth1]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: all}
        """)
    assert diagnostics == []
    first, everything = config.l2_advertisements
    assert first.ip_address_pools == ("p1", "p2")
    assert first.ip_address_pool_selectors == (LabelSelector(match_labels=(("tier", "gold"),)),)
    assert first.node_selectors[0].match_expressions[0].operator is SelectorOperator.EXISTS
    assert first.interfaces == ("eth0", "eth1")
    assert (everything.ip_address_pools, everything.node_selectors) == ((), ())


@pytest.mark.parametrize("version", ["metallb.io/v1beta1", "metallb.io/v1beta2"])
def test_bgp_kinds(version: str) -> None:
    config, diagnostics = parse(f"""\
        apiVersion: {version}
        kind: BGPPeer
        metadata: {{name: r1}}
        spec:
          myASN: 64500
          peerASN: 64501
          peerAddress: 10.0.0.1
          peerPort: 1179
          sourceAddress: 10.0.0.2
          routerID: 10.0.0.2
          holdTime: 1m30s
          keepaliveTime: 30s
          ebgpMultiHop: true
          password: s3cret
          {"vrf: red" if version.endswith("v1beta2") else ""}
          nodeSelectors:
            - matchLabels: {{bgp: "yes"}}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {{name: b}}
        spec:
          aggregationLength: 32
          aggregationLengthV6: 120
          localPref: 100
          communities: ["64500:1"]
          ipAddressPools: [p]
          peers: [r1]
        """)
    assert diagnostics == []
    (peer,) = config.bgp_peers
    assert (peer.my_asn, peer.peer_asn, peer.peer_address, peer.peer_port) == (64500, 64501, ip("10.0.0.1"), 1179)
    assert (peer.source_address, peer.router_id, peer.hold_time_seconds, peer.keepalive_time_seconds) == (
        ip("10.0.0.2"), "10.0.0.2", 90.0, 30.0)
    assert (peer.ebgp_multihop, peer.password) == (True, "s3cret")
    assert peer.vrf == ("red" if version.endswith("v1beta2") else "")
    assert peer.node_selectors == (LabelSelector(match_labels=(("bgp", "yes"),)),)
    (ad,) = config.bgp_advertisements
    assert (ad.aggregation_length, ad.aggregation_length_v6, ad.local_pref) == (32, 120, 100)
    assert (ad.communities, ad.ip_address_pools, ad.peers) == (("64500:1",), ("p",), ("r1",))


SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations:
    metallb.io/address-pool: gold
    metallb.io/allow-shared-ip: web-key
spec:
  type: LoadBalancer
  selector: {app: web}
  loadBalancerIP: 10.0.0.5
  loadBalancerClass: metallb.io/metallb
  ipFamilyPolicy: PreferDualStack
  ipFamilies: [IPv4, IPv6]
  externalTrafficPolicy: Local
  ports:
    - {name: http, port: 80}
    - {name: dns, port: 53, protocol: UDP}
status:
  loadBalancer:
    ingress:
      - ip: 10.0.0.5
      - hostname: lb.example.com
"""


def test_service_every_field() -> None:
    config, diagnostics = parse(SERVICE)
    assert diagnostics == []
    (svc,) = config.services
    assert (svc.namespace, svc.name, svc.type, svc.labels, svc.selector) == (
        "shop", "web", "LoadBalancer", (("app", "web"),), (("app", "web"),))
    assert (svc.requested_ips, svc.requested_pool, svc.sharing_key) == ((ip("10.0.0.5"),), "gold", "web-key")
    assert (svc.load_balancer_class, svc.ip_families, svc.ip_family_policy) == (
        "metallb.io/metallb", (4, 6), IPFamilyPolicy.PREFER_DUAL_STACK)
    assert svc.external_traffic_policy is ExternalTrafficPolicy.LOCAL
    assert [(p.name, p.port, p.protocol) for p in svc.ports] == [("http", 80, "TCP"), ("dns", 53, "UDP")]
    assert svc.status_ips == (ip("10.0.0.5"),)
    assert field_source(svc.source, svc.field_lines, "spec.loadBalancerIP").line == 13


def test_service_defaults_follow_kubernetes() -> None:
    config, diagnostics = parse("""\
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec:
          ports: [{port: 80}]
        """)
    assert diagnostics == []
    (svc,) = config.services
    assert (svc.namespace, svc.type, svc.is_load_balancer, svc.ip_families) == ("default", "ClusterIP", False, (4,))


@pytest.mark.parametrize(
    ("annotations", "ips"),
    [
        pytest.param("metallb.io/loadBalancerIPs: 10.0.0.1", ("10.0.0.1",), id="one"),
        pytest.param('metallb.io/loadBalancerIPs: "10.0.0.1, fd00::1"', ("10.0.0.1", "fd00::1"), id="dual-spaces"),
    ],
)
def test_load_balancer_ips_annotation(annotations: str, ips: tuple[str, ...]) -> None:
    config, diagnostics = parse(f"""\
        apiVersion: v1
        kind: Service
        metadata:
          name: s
          annotations:
            {annotations}
        spec:
          type: LoadBalancer
          ipFamilyPolicy: PreferDualStack
        """)
    assert diagnostics == []
    assert config.services[0].requested_ips == tuple(ip(i) for i in ips)


def test_legacy_annotations_work_with_a_deprecation_warning() -> None:
    config, diagnostics = parse("""\
        apiVersion: v1
        kind: Service
        metadata:
          name: s
          annotations:
            metallb.universe.tf/loadBalancerIPs: 10.0.0.9
            metallb.universe.tf/address-pool: p
            metallb.universe.tf/allow-shared-ip: k
        spec: {type: LoadBalancer}
        """)
    assert errors(diagnostics) == []
    svc = config.services[0]
    assert (svc.requested_ips, svc.requested_pool, svc.sharing_key) == ((ip("10.0.0.9"),), "p", "k")
    found = warnings(diagnostics)
    assert len(found) == 3
    assert "t.yaml:6: Service/default/s: warning: annotation metallb.universe.tf/loadBalancerIPs is deprecated; " \
           "rename it to metallb.io/loadBalancerIPs" in found


def test_ipv6_request_infers_the_family() -> None:
    config, _ = parse("""\
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec: {type: LoadBalancer, loadBalancerIP: "fd00::5"}
        """)
    assert config.services[0].ip_families == (6,)


def test_node_endpoint_slice_namespace() -> None:
    config, diagnostics = parse("""\
        apiVersion: v1
        kind: Node
        metadata:
          name: n1
          labels: {zone: a}
        status:
          addresses:
            - {type: Hostname, address: n1}
            - {type: InternalIP, address: 10.0.0.11}
            - {type: InternalIP, address: "fd00::11"}
          conditions:
            - {type: Ready, status: "False"}
            - {type: NetworkUnavailable, status: "True"}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-abc
          namespace: shop
          labels: {kubernetes.io/service-name: web}
        addressType: IPv4
        endpoints:
          - addresses: [10.244.1.5]
            nodeName: n1
            conditions: {ready: false, serving: true}
          - addresses: [10.244.2.5]
            nodeName: n2
        ---
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
          labels: {env: prod}
        """)
    assert diagnostics == []
    (node,) = config.nodes
    assert (node.labels, node.addresses) == ((("zone", "a"),), (ip("10.0.0.11"), ip("fd00::11")))
    assert (node.ready, node.network_unavailable) == (False, True)
    (eps,) = config.endpoint_slices
    assert str(eps.service_key) == "shop/web"
    assert [(e.addresses, e.node_name, e.ready, e.serving) for e in eps.endpoints] == [
        ((ip("10.244.1.5"),), "n1", False, True), ((ip("10.244.2.5"),), "n2", True, True)]
    assert config.namespace_labels("shop") == {"env": "prod", "kubernetes.io/metadata.name": "shop"}


def test_settings() -> None:
    config, diagnostics = parse("""\
        apiVersion: metalloid.io/v1alpha1
        kind: Settings
        metadata: {name: settings}
        spec:
          stateDir: /var/lib/metalloid
          bindLocal: true
          refreshSeconds: 30
          membership:
            port: 7999
            intervalSeconds: 0.2
            deadAfterSeconds: 0.7
            keyFile: /etc/metalloid/key
            insecure: false
        """)
    assert diagnostics == []
    s = config.settings
    assert (s.state_dir, s.bind_local, s.refresh_seconds) == ("/var/lib/metalloid", True, 30.0)
    m = s.membership
    assert (m.port, m.interval_seconds, m.dead_after_seconds, m.key_file, m.insecure) == (
        7999, 0.2, 0.7, "/etc/metalloid/key", False)
    assert s.source.line == 1


def test_unknown_kind_is_a_warning_and_ignored() -> None:
    config, diagnostics = parse("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        """)
    assert config == Config()
    assert warnings(diagnostics) == [
        "t.yaml:1: Deployment/web: warning: kind Deployment (apps/v1) is not used by metalloid and is ignored"]


def test_unsupported_api_version_is_an_error() -> None:
    _, diagnostics = parse("""\
        apiVersion: metallb.io/v1alpha1
        kind: IPAddressPool
        metadata: {name: p}
        """)
    assert errors(diagnostics) == ['t.yaml:1: IPAddressPool/p: apiVersion "metallb.io/v1alpha1" is not supported '
                                   'for IPAddressPool; use metallb.io/v1beta1']


def test_v1_list_items_are_parsed() -> None:
    config, diagnostics = parse("""\
        apiVersion: v1
        kind: List
        items:
          - {apiVersion: v1, kind: Namespace, metadata: {name: a}}
          - {apiVersion: v1, kind: Namespace, metadata: {name: b}}
        """)
    assert diagnostics == []
    assert [n.name for n in config.namespaces] == ["a", "b"]


def test_unknown_spec_field_warns_with_a_suggestion() -> None:
    _, diagnostics = parse("""\
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: p}
        spec:
          addresses: [10.0.0.1/32]
          autoassign: false
        """)
    assert warnings(diagnostics) == [
        "t.yaml:6: IPAddressPool/p: warning: unknown field spec.autoassign is ignored; did you mean autoAssign?"]


def test_yaml_1_1_booleans_are_strings() -> None:
    config, diagnostics = parse("""\
        apiVersion: v1
        kind: Namespace
        metadata:
          name: n
          labels: {legacy: on, flag: yes}
        """)
    assert diagnostics == []
    assert config.namespaces[0].labels == (("flag", "yes"), ("legacy", "on"))


def test_duplicate_keys_are_errors() -> None:
    _, diagnostics = parse("""\
        apiVersion: v1
        kind: Namespace
        metadata:
          name: a
          name: b
        """)
    assert errors(diagnostics) == ["t.yaml:5: YAML/duplicate-key: key 'name' appears twice in the same mapping; the "
                                   "first value would be silently lost, keep only one"]


def test_document_lines_skip_comments_and_separators() -> None:
    docs, diagnostics = load_documents(str(EXAMPLES / "homelab.yaml"))
    assert diagnostics == []
    assert [d.line for d in docs][:2] == [8, 19]


def test_parse_objects_plain_dicts_get_line_zero() -> None:
    obj: dict[str, Any] = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                           "metadata": {"name": "p"}, "spec": {"addresses": ["10.0.0.0/33"]}}
    config, diagnostics = parse_objects([obj], origin="<api>")
    assert [str(d) for d in diagnostics] == [
        "<api>:0: IPAddressPool/p: spec.addresses[0]: '10.0.0.0/33' is not a valid CIDR; write an address and a "
        "prefix length within the family (0-32 for IPv4, 0-128 for IPv6), e.g. 10.0.10.0/24"]
    config, diagnostics = parse_objects([{**obj, "spec": {"addresses": ["10.0.0.0/24"]}}])
    assert diagnostics == [] and config.pools[0].source.line == 0


# Garbage: random nested values under known kinds must only ever produce diagnostics.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["10.0.0.1", "10.0.0.0/24", "fd00::1-fd00::9", "In",
                                                            "Exists", "IPv4", "IPv6", "LoadBalancer", "Local",
                                                            "InternalIP", "True", "1-2", "a/b", "10.0.0.1/33"]))
_keys = st.sampled_from([
    "metadata", "spec", "status", "name", "namespace", "labels", "annotations", "addresses", "autoAssign",
    "avoidBuggyIPs", "serviceAllocation", "priority", "namespaces", "namespaceSelectors", "serviceSelectors",
    "matchLabels", "matchExpressions", "key", "operator", "values", "ipAddressPools", "ipAddressPoolSelectors",
    "nodeSelectors", "interfaces", "myASN", "peerASN", "peerAddress", "holdTime", "keepaliveTime",
    "aggregationLength", "aggregationLengthV6", "type", "selector", "ports", "port", "protocol", "loadBalancerIP",
    "ipFamilies", "ipFamilyPolicy", "externalTrafficPolicy", "loadBalancer", "ingress", "ip", "conditions",
    "address", "endpoints", "nodeName", "ready", "serving", "membership", "intervalSeconds", "deadAfterSeconds",
    "metallb.io/loadBalancerIPs", "metallb.universe.tf/address-pool", "kubernetes.io/service-name", "items",
]) | st.integers(0, 3) | st.booleans()
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6),
                       max_leaves=20)
_kinds = st.sampled_from([
    ("metallb.io/v1beta1", "IPAddressPool"), ("metallb.io/v1beta1", "L2Advertisement"),
    ("metallb.io/v1beta2", "BGPPeer"), ("metallb.io/v1beta1", "BGPAdvertisement"), ("v1", "Service"),
    ("v1", "Node"), ("discovery.k8s.io/v1", "EndpointSlice"), ("v1", "Namespace"), ("v1", "List"),
    ("metalloid.io/v1alpha1", "Settings"),
])


@st.composite
def _garbage_object(draw: st.DrawFn) -> Any:
    api_version, kind = draw(_kinds)
    body = draw(st.dictionaries(_keys, _values, max_size=6))
    return draw(st.one_of(st.just({**body, "apiVersion": api_version, "kind": kind}), _values))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_garbage_object(), max_size=4))
def test_garbage_never_raises(objects: list[Any]) -> None:
    config, diagnostics = parse_objects(objects)
    validated = validate(config)
    for d in [*diagnostics, *validated]:
        assert str(d).startswith("<api>:0: ")


def _obj(api_version: str, kind: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": spec, **extra}


WRONG_FIELDS = [
    ("addresses-not-list", _obj("metallb.io/v1beta1", "IPAddressPool", {"addresses": "10.0.0.0/24"}),
     'spec.addresses: expected a list, got "10.0.0.0/24"'),
    ("addresses-empty", _obj("metallb.io/v1beta1", "IPAddressPool", {"addresses": []}),
     "spec.addresses is empty"),
    ("priority-not-int", _obj("metallb.io/v1beta1", "IPAddressPool",
                              {"addresses": ["10.0.0.1"], "serviceAllocation": {"priority": "high"}}),
     'spec.serviceAllocation.priority: expected an integer, got "high"'),
    ("exists-with-values", _obj("metallb.io/v1beta1", "L2Advertisement", {"nodeSelectors": [
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}]}),
     "operator Exists on 'a' takes no values"),
    ("interfaces-not-strings", _obj("metallb.io/v1beta1", "L2Advertisement", {"interfaces": [1]}),
     "spec.interfaces[0]: expected a string, got 1"),
    ("peer-missing-asn", _obj("metallb.io/v1beta1", "BGPPeer", {"myASN": 1, "peerAddress": "10.0.0.1"}),
     "spec.peerASN is missing"),
    ("peer-bad-hold-time", _obj("metallb.io/v1beta1", "BGPPeer",
                                {"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "holdTime": "90"}),
     'spec.holdTime: "90" is not a duration'),
    ("peer-hold-time-too-short", _obj("metallb.io/v1beta1", "BGPPeer",
                                      {"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "holdTime": "2s"}),
     "spec.holdTime: 2s is too short"),
    ("peer-bad-address", _obj("metallb.io/v1beta1", "BGPPeer", {"myASN": 1, "peerASN": 2, "peerAddress": "r1"}),
     'spec.peerAddress: "r1" is not an IP address'),
    ("port-not-int", _obj("v1", "Service", {"type": "LoadBalancer", "ports": [{"port": "80"}]}),
     'spec.ports[0].port: expected an integer, got "80"'),
    ("port-out-of-range", _obj("v1", "Service", {"type": "LoadBalancer", "ports": [{"port": 70000}]}),
     "spec.ports[0].port: 70000 is out of range; use a value between 1 and 65535"),
    ("bad-protocol", _obj("v1", "Service", {"type": "LoadBalancer", "ports": [{"port": 1, "protocol": "ICMP"}]}),
     'unknown protocol "ICMP"'),
    ("bad-family-policy", _obj("v1", "Service", {"type": "LoadBalancer", "ipFamilyPolicy": "Dual"}),
     'spec.ipFamilyPolicy: unknown value "Dual"; use one of SingleStack, PreferDualStack, RequireDualStack'),
    ("bad-traffic-policy", _obj("v1", "Service", {"type": "LoadBalancer", "externalTrafficPolicy": "local"}),
     'spec.externalTrafficPolicy: unknown value "local"'),
    ("bad-family", _obj("v1", "Service", {"type": "LoadBalancer", "ipFamilies": ["IPv5"]}),
     'spec.ipFamilies[0]: unknown family "IPv5"'),
    ("two-families-single-stack", _obj("v1", "Service", {"type": "LoadBalancer", "ipFamilies": ["IPv4", "IPv6"]}),
     "ipFamilyPolicy is SingleStack"),
    ("request-of-wrong-family", _obj("v1", "Service", {"type": "LoadBalancer", "loadBalancerIP": "fd00::1",
                                                      "ipFamilies": ["IPv4"]}),
     "requested IP fd00::1 is IPv6 but the Service's ipFamilies are IPv4"),
    ("two-ipv4-in-annotation", {**_obj("v1", "Service", {"type": "LoadBalancer"}), "metadata": {
        "name": "x", "annotations": {"metallb.io/loadBalancerIPs": "10.0.0.1,10.0.0.2"}}},
     "must hold at most one IPv4 and one IPv6 address"),
    ("bad-type", _obj("v1", "Service", {"type": "Loadbalancer"}), 'spec.type: unknown type "Loadbalancer"'),
    ("bad-status-ip", _obj("v1", "Service", {"type": "LoadBalancer"},
                           status={"loadBalancer": {"ingress": [{"ip": "x"}]}}),
     'status.loadBalancer.ingress[0].ip: "x" is not an IP address'),
    ("label-not-string", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "labels": {"a": 1}}},
     "metadata.labels.a: expected a string, got 1; quote it"),
    ("name-missing", {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}, "metadata.name is missing"),
    ("node-bad-address", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                          "status": {"addresses": [{"type": "InternalIP", "address": "n1"}]}},
     'status.addresses[0].address: "n1" is not an IP address'),
    ("settings-dead-before-interval", _obj("metalloid.io/v1alpha1", "Settings", {"membership": {
        "intervalSeconds": 0.5, "deadAfterSeconds": 0.2}}), "deadAfterSeconds 0.2 is not longer than intervalSeconds"),
    ("settings-bad-port", _obj("metalloid.io/v1alpha1", "Settings", {"membership": {"port": True}}),
     "spec.membership.port: expected an integer, got true"),
    ("not-an-object", ["a", "list"], "document is a list, not an object"),
    ("no-kind", {"apiVersion": "v1"}, "object without a string apiVersion and kind"),
]


@pytest.mark.parametrize(("obj", "fragment"), [pytest.param(*w[1:], id=w[0]) for w in WRONG_FIELDS])
def test_wrong_fields_are_errors_naming_the_field(obj: Any, fragment: str) -> None:
    _, diagnostics = parse_objects([obj])
    found = [str(d) for d in diagnostics if d.is_error]
    assert any(fragment in f for f in found), found
