"""The metallb.io CRDs in deploy/ accept the runbook's manifests unchanged and
reject malformed ones through their schema and CEL rules, as the API server
would, with no webhook. See tests/deploy_support.py for the offline checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.deploy_support import (
    Obj,
    admission_errors,
    cel_program,
    cel_rules,
    crd_version_schema,
    find,
    kustomize,
    pruned_paths,
)
from tests.runbook import RUNBOOK_L2, RUNBOOK_POOL

CRD_NAMES = {
    "IPAddressPool": "ipaddresspools.metallb.io",
    "L2Advertisement": "l2advertisements.metallb.io",
    "BGPPeer": "bgppeers.metallb.io",
    "BGPAdvertisement": "bgpadvertisements.metallb.io",
    "BFDProfile": "bfdprofiles.metallb.io",
    "Community": "communities.metallb.io",
}
# Status-only kinds, written by metalloid (never by users).
STATUS_CRD_NAMES = {
    "ServiceL2Status": "servicel2statuses.metallb.io",
    "ServiceBGPStatus": "servicebgpstatuses.metallb.io",
    "ConfigurationState": "configurationstates.metallb.io",
}


def crd_for(obj: Obj) -> Obj:
    return find(kustomize("."), "CustomResourceDefinition", CRD_NAMES[obj["kind"]])


def runbook_pool() -> Obj:
    pool: Obj = yaml.safe_load(RUNBOOK_POOL)
    return pool


def with_spec(obj: Obj, **changes: Any) -> Obj:
    out = copy.deepcopy(obj)
    out["spec"].update(changes)
    return out


@pytest.mark.parametrize("text", [RUNBOOK_POOL, RUNBOOK_L2], ids=["IPAddressPool", "L2Advertisement"])
def test_runbook_manifests_are_accepted_unchanged(text: str) -> None:
    obj = yaml.safe_load(text)
    assert admission_errors(crd_for(obj), obj) == []


def test_the_crds_keep_metallbs_group_versions_and_names() -> None:
    crds = {c["metadata"]["name"]: c for c in kustomize(".") if c["kind"] == "CustomResourceDefinition"}
    metallb = {name for name, crd in crds.items() if crd["spec"]["group"] == "metallb.io"}
    assert metallb == set(CRD_NAMES.values()) | set(STATUS_CRD_NAMES.values())
    for kind, name in {**CRD_NAMES, **STATUS_CRD_NAMES}.items():
        spec = crds[name]["spec"]
        assert spec["group"] == "metallb.io"
        assert spec["names"]["kind"] == kind
        assert spec["scope"] == "Namespaced"
        storage = [v["name"] for v in spec["versions"] if v["storage"]]
        expected = "v1beta2" if kind == "BGPPeer" else "v1beta1"
        assert storage == [expected], f"{kind} must store {expected}"
    peer_versions = {v["name"] for v in crds["bgppeers.metallb.io"]["spec"]["versions"] if v["served"]}
    assert peer_versions == {"v1beta1", "v1beta2"}
    # No conversion webhook to be unreachable.
    assert crds["bgppeers.metallb.io"]["spec"].get("conversion", {"strategy": "None"})["strategy"] == "None"


def test_pool_printer_columns_show_addresses_and_available_ips() -> None:
    crd = find(kustomize("."), "CustomResourceDefinition", "ipaddresspools.metallb.io")
    columns = {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Addresses"] == ".spec.addresses"
    assert columns["Available IPv4"] == ".status.availableIPv4"
    assert columns["Assigned IPv4"] == ".status.assignedIPv4"
    status = crd_version_schema(crd, "v1beta1")["properties"]["status"]["properties"]
    assert {"assignedIPv4", "assignedIPv6", "availableIPv4", "availableIPv6"} <= set(status)


def test_every_cel_rule_compiles() -> None:
    rules = [
        (crd["metadata"]["name"], version["name"], path, rule)
        for crd in kustomize(".")
        if crd["kind"] == "CustomResourceDefinition"
        for version in crd["spec"]["versions"]
        for path, rule in cel_rules(version["schema"]["openAPIV3Schema"])
    ]
    assert len(rules) >= 10, "the CRDs lost their CEL rules"
    for _name, _version, _path, rule in rules:
        cel_program(rule["rule"])
        if "messageExpression" in rule:
            cel_program(rule["messageExpression"])
        assert rule.get("message"), "every rule needs a static message too (older clients, cost limits)"


VALID_ADDRESSES = [
    "10.0.10.10-10.0.10.99",
    "10.0.10.0/24",
    "10.0.10.5",
    "10.0.10.5-10.0.10.5",
    "10.0.10.10 - 10.0.10.99",
    "fd00:10::/64",
    "fd00:10::1-fd00:10::ff",
    "2001:db8::5",
    # Host bits: MetalLB (Go's net.ParseCIDR) masks them, as metalloid does (with a warning).
    "10.0.10.1/24",
    "fd00:10::1/64",
]
MALFORMED_ADDRESSES = [
    ("bad-cidr-prefix", "10.0.10.0/33", "is not a CIDR"),
    ("bad-cidr-v6-prefix", "fd00::/129", "is not a CIDR"),
    ("cidr-without-bits", "10.0.10.0/", "is not a CIDR"),
    ("netmask-cidr", "10.0.10.0/255.255.255.0", "is not a CIDR"),
    ("reversed-range", "10.0.10.99-10.0.10.10", "is reversed"),
    ("reversed-in-first-octet", "11.0.0.0-10.255.255.255", "is reversed"),
    ("mixed-family-range", "10.0.10.1-fd00::1", "mixes IPv4 and IPv6"),
    ("bad-ip-octet", "10.0.10.300", "is not a CIDR"),
    ("bad-ip-word", "first-pool", "is not a CIDR"),
    ("short-ip", "10.0.10", "is not a CIDR"),
    ("leading-zero", "10.0.10.010", "is not a CIDR"),
    ("three-part-range", "10.0.0.1-10.0.0.2-10.0.0.3", "is not a CIDR"),
    ("range-with-bad-end", "10.0.10.10-10.0.10.999", "is not a CIDR"),
    ("ipv4-mapped-ipv6", "::ffff:10.0.10.1", "is not a CIDR"),
    ("zone", "fe80::1%eth0", "is not a CIDR"),
    ("empty", "", "is not a CIDR"),
]


@pytest.mark.parametrize("address", VALID_ADDRESSES)
def test_pool_accepts_every_address_form_metallb_does(address: str) -> None:
    pool = with_spec(runbook_pool(), addresses=[address])
    assert admission_errors(crd_for(pool), pool) == []


@pytest.mark.parametrize(
    ("address", "fragment"), [m[1:] for m in MALFORMED_ADDRESSES], ids=[m[0] for m in MALFORMED_ADDRESSES]
)
def test_pool_rejects_malformed_addresses_naming_the_address(address: str, fragment: str) -> None:
    pool = with_spec(runbook_pool(), addresses=["10.0.10.10-10.0.10.99", address])
    errors = admission_errors(crd_for(pool), pool)
    assert len(errors) == 1, errors
    assert errors[0].startswith(".spec.addresses[1]: ")
    assert fragment in errors[0]
    assert repr(address).strip("'") in errors[0]


SCHEMA_REJECTS = [
    ("missing-addresses", lambda p: p["spec"].pop("addresses"), "addresses"),
    ("missing-spec", lambda p: p.pop("spec"), "spec"),
    ("address-not-a-string", lambda p: p["spec"].update(addresses=[10]), "is not of type 'string'"),
    ("autoassign-typo", lambda p: p["spec"].update(autoassign=False), "autoassign"),
    ("autoassign-string", lambda p: p["spec"].update(autoAssign="yes"), "is not of type 'boolean'"),
    ("selector-bad-operator", lambda p: p["spec"].update(
        serviceAllocation={"serviceSelectors": [{"matchExpressions": [{"key": "a", "operator": "Is"}]}]}), "Is"),
    ("empty-addresses", lambda p: p["spec"].update(addresses=[]), "non-empty"),
    ("priority-not-an-integer", lambda p: p["spec"].update(serviceAllocation={"priority": "high"}), "integer"),
]


@pytest.mark.parametrize(("mutate", "fragment"), [s[1:] for s in SCHEMA_REJECTS], ids=[s[0] for s in SCHEMA_REJECTS])
def test_pool_schema_rejects_wrong_fields(mutate: Any, fragment: str) -> None:
    pool = runbook_pool()
    mutate(pool)
    errors = admission_errors(crd_for(pool), pool)
    assert errors, "accepted"
    assert any(fragment in e for e in errors), errors


def test_selector_operators_need_values_exactly_when_metallb_does() -> None:
    def pool_with(expression: Obj) -> Obj:
        return with_spec(runbook_pool(), serviceAllocation={"namespaceSelectors": [{"matchExpressions": [expression]}]})

    ok: list[Obj] = [{"key": "team", "operator": "In", "values": ["a"]}, {"key": "team", "operator": "Exists"}]
    bad: list[Obj] = [{"key": "team", "operator": "In"}, {"key": "team", "operator": "DoesNotExist", "values": ["a"]}]
    for expression in ok:
        assert admission_errors(crd_for(pool_with(expression)), pool_with(expression)) == [], expression
    for expression in bad:
        errors = admission_errors(crd_for(pool_with(expression)), pool_with(expression))
        assert errors and "In and NotIn need values" in errors[0], expression


L2_CASES = [
    ("interfaces", {"interfaces": ["eth0", "bond0.10"]}, None),
    ("node-selector", {"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n1"}}]}, None),
    ("interface-too-long", {"interfaces": ["a-very-long-interface0"]}, "is too long"),
    ("interface-with-slash", {"interfaces": ["eth/0"]}, "no '/'"),
    # MetalLB's schema takes any name; one no pool has is `check`'s warning.
    ("pool-name-uppercase", {"ipAddressPools": ["PoolA"]}, None),
    ("service-selectors", {"serviceSelectors": [{"matchLabels": {"tier": "frontend"}}]}, None),
    ("preferred-node-selectors", {"preferredNodeSelectors": [
        {"weight": 100, "preference": {"matchLabels": {"zone": "primary"}}}]}, None),
    ("preferred-weight-too-big", {"preferredNodeSelectors": [
        {"weight": 101, "preference": {"matchLabels": {"zone": "primary"}}}]}, "maximum"),
    ("preferred-without-preference", {"preferredNodeSelectors": [{"weight": 1}]}, "preference"),
    ("unknown-field", {"ipaddressPools": ["first-pool"]}, "ipaddressPools"),
]


@pytest.mark.parametrize(("spec", "fragment"), [c[1:] for c in L2_CASES], ids=[c[0] for c in L2_CASES])
def test_l2advertisement_fields(spec: Obj, fragment: str | None) -> None:
    adv = yaml.safe_load(RUNBOOK_L2)
    adv["spec"].update(spec)
    errors = admission_errors(crd_for(adv), adv)
    if fragment is None:
        assert errors == []
    else:
        assert any(fragment in e for e in errors), errors


BGP_PEER: Obj = {
    "apiVersion": "metallb.io/v1beta2",
    "kind": "BGPPeer",
    "metadata": {"name": "router", "namespace": "metallb-system"},
    "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.10.1", "holdTime": "90s"},
}


PEER_CASES: list[tuple[str, str, Obj, str | None]] = [
    ("v1beta2", "v1beta2", {}, None),
    ("v1beta1", "v1beta1", {}, None),
    ("vrf", "v1beta2", {"vrf": "red"}, None),
    ("vrf-not-in-v1beta1", "v1beta1", {"vrf": "red"}, "vrf"),
    ("bad-peer-address", "v1beta2", {"peerAddress": "10.0.10.256"}, 'peerAddress "10.0.10.256" is not an IP'),
    ("asn-too-big", "v1beta2", {"myASN": 4294967296}, "maximum"),
    ("my-asn-zero", "v1beta2", {"myASN": 0}, "minimum"),
    ("hold-time-too-short", "v1beta2", {"holdTime": "1s"}, "holdTime must be 0s or at least 3s"),
    ("keepalive-longer-than-hold", "v1beta2", {"holdTime": "9s", "keepaliveTime": "10s"}, "not be longer"),
    ("every-v1beta2-field", "v1beta2", {
        "localASN": 65410, "connectTime": "120s", "passwordSecret": {"name": "s", "namespace": "metallb-system"},
        "enableGracefulRestart": True, "disableMP": False, "dualStackAddressFamily": True, "vrf": "red",
        "bfdProfile": "fast", "routerID": "10.0.10.2", "sourceAddress": "10.0.10.3", "ebgpMultiHop": True,
        "keepaliveTime": "30s", "peerPort": 180,
        "nodeSelectors": [{"matchExpressions": [{"key": "rack", "operator": "Exists"}]}]}, None),
    ("dynamic-asn", "v1beta2", {"peerASN": None, "dynamicASN": "external"}, None),
    ("dynamic-asn-unknown", "v1beta2", {"peerASN": None, "dynamicASN": "both"}, "dynamicASN"),
    ("neither-asn", "v1beta2", {"peerASN": None}, "set peerASN or dynamicASN"),
    ("both-asns", "v1beta2", {"dynamicASN": "internal"}, "peerASN and dynamicASN exclude each other"),
    ("interface", "v1beta2", {"peerAddress": None, "interface": "eth1"}, None),
    ("neither-address", "v1beta2", {"peerAddress": None}, "exactly one of peerAddress and interface"),
    ("both-addresses", "v1beta2", {"interface": "eth1"}, "exactly one of peerAddress and interface"),
    ("password-twice", "v1beta2", {"password": "x", "passwordSecret": {"name": "s"}}, "exclude each other"),
    ("multihop-ibgp", "v1beta2", {"peerASN": 64500, "ebgpMultiHop": True}, "ebgpMultiHop is for eBGP"),
    ("connect-time-fraction", "v1beta2", {"connectTime": "1500ms"}, "whole number of seconds"),
    ("connect-time-too-long", "v1beta2", {"connectTime": "20h"}, "between 1s and 65535s"),
    ("local-asn-not-in-v1beta1", "v1beta1", {"localASN": 65410}, "localASN"),
    ("v1beta1-expression-needs-values", "v1beta1",
     {"nodeSelectors": [{"matchExpressions": [{"key": "rack", "operator": "Exists"}]}]}, "values"),
    ("v1beta1-port-zero", "v1beta1", {"peerPort": 0}, None),
    ("router-id-v6", "v1beta2", {"routerID": "fd00::1"}, None),
]


@pytest.mark.parametrize(("version", "spec", "fragment"), [c[1:] for c in PEER_CASES], ids=[c[0] for c in PEER_CASES])
def test_bgp_peer_versions(version: str, spec: Obj, fragment: str | None) -> None:
    peer = copy.deepcopy(BGP_PEER)
    peer["apiVersion"] = f"metallb.io/{version}"
    peer["spec"].update(spec)
    peer["spec"] = {k: v for k, v in peer["spec"].items() if v is not None}
    errors = admission_errors(crd_for(peer), peer)
    if fragment is None:
        assert errors == []
    else:
        assert any(fragment in e for e in errors), errors


def test_graceful_restart_cannot_change_but_the_rest_can() -> None:
    old = copy.deepcopy(BGP_PEER)
    old["spec"]["enableGracefulRestart"] = True
    flipped = copy.deepcopy(old)
    flipped["spec"]["enableGracefulRestart"] = False
    retimed = copy.deepcopy(old)
    retimed["spec"]["holdTime"] = "30s"
    assert admission_errors(crd_for(old), old) == []
    assert any("cannot be changed" in e for e in admission_errors(crd_for(old), flipped, old=old))
    assert admission_errors(crd_for(old), retimed, old=old) == []


def test_bgp_peer_versions_share_one_shape_so_conversion_none_loses_nothing() -> None:
    """Every v1beta1 field exists in v1beta2 with a type at least as wide, so
    relabelling apiVersion (conversion None) keeps a v1beta1 object whole."""
    crd = find(kustomize("."), "CustomResourceDefinition", "bgppeers.metallb.io")
    v1 = crd_version_schema(crd, "v1beta1")["properties"]["spec"]["properties"]
    v2 = crd_version_schema(crd, "v1beta2")["properties"]["spec"]["properties"]
    assert set(v1) < set(v2)
    for name, schema in v1.items():
        assert schema["type"] == v2[name]["type"], name
    full_v1 = copy.deepcopy(BGP_PEER)
    full_v1["apiVersion"] = "metallb.io/v1beta1"
    full_v1["spec"].update(peerPort=180, sourceAddress="10.0.10.3", routerID="10.0.10.2", keepaliveTime="30s",
                           password="pw", bfdProfile="fast", ebgpMultiHop=True, nodeSelectors=[
                               {"matchLabels": {"a": "b"}, "matchExpressions": [
                                   {"key": "rack", "operator": "In", "values": ["r1"]}]}])
    full_v1["spec"]["peerASN"] = 64501
    assert admission_errors(crd, full_v1) == []
    as_v2 = {**copy.deepcopy(full_v1), "apiVersion": "metallb.io/v1beta2"}
    assert pruned_paths(crd_version_schema(crd, "v1beta2"), as_v2) == []
    assert admission_errors(crd, as_v2) == []
    spec = crd["spec"]
    assert spec["conversion"]["strategy"] == "None"
    versions = {v["name"]: v for v in spec["versions"]}
    assert versions["v1beta1"]["deprecated"] is True and versions["v1beta2"]["storage"] is True


COMMUNITY_CASES = [
    ("standard", "65535:65282", None),
    ("large", "large:64512:1:2", None),
    ("alias", "NO_ADVERTISE", None),
    ("alias-with-two-colons", "a:b:c", None),
    ("standard-too-big", "65536:1", "is not a standard"),
    ("standard-not-numbers", "no:export", "is not a standard"),
    ("large-wrong-marker", "big:1:2:3", "is not a standard"),
    ("large-too-big", "large:4294967296:1:2", "is not a standard"),
]


@pytest.mark.parametrize(("value", "fragment"), [c[1:] for c in COMMUNITY_CASES], ids=[c[0] for c in COMMUNITY_CASES])
def test_bgp_advertisement_communities_follow_metallbs_format(value: str, fragment: str | None) -> None:
    adv: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                "metadata": {"name": "a", "namespace": "metallb-system"}, "spec": {"communities": [value]}}
    errors = admission_errors(crd_for(adv), adv)
    assert (errors == []) if fragment is None else any(fragment in e for e in errors), errors


def test_community_values_must_be_communities() -> None:
    community: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "Community",
                      "metadata": {"name": "c", "namespace": "metallb-system"},
                      "spec": {"communities": [{"name": "vpn-only", "value": "1234:1"}]}}
    assert admission_errors(crd_for(community), community) == []
    community["spec"]["communities"][0]["value"] = "NO_ADVERTISE"
    assert any("is not a standard" in e for e in admission_errors(crd_for(community), community))


def test_bgp_advertisement_service_selectors_need_default_aggregation() -> None:
    adv: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                "metadata": {"name": "a", "namespace": "metallb-system"},
                "spec": {"serviceSelectors": [{"matchLabels": {"environment": "production"}}], "aggregationLength": 32}}
    assert admission_errors(crd_for(adv), adv) == []
    adv["spec"]["aggregationLengthV6"] = 64
    assert any("serviceSelectors only works" in e for e in admission_errors(crd_for(adv), adv))


def test_bfd_profile_bounds_are_metallbs() -> None:
    profile: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
                    "metadata": {"name": "fast", "namespace": "metallb-system"},
                    "spec": {"receiveInterval": 380, "transmitInterval": 270, "detectMultiplier": 3,
                             "echoInterval": 50, "echoMode": False, "passiveMode": True, "minimumTtl": 254}}
    assert admission_errors(crd_for(profile), profile) == []
    for field, value in (("receiveInterval", 9), ("detectMultiplier", 256), ("minimumTtl", 255)):
        bad = with_spec(profile, **{field: value})
        assert admission_errors(crd_for(bad), bad), field


def test_bgp_advertisement_aggregation_bounds() -> None:
    adv: Obj = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BGPAdvertisement",
        "metadata": {"name": "a", "namespace": "metallb-system"},
        "spec": {"ipAddressPools": ["first-pool"], "aggregationLength": 24, "aggregationLengthV6": 64},
    }
    assert admission_errors(crd_for(adv), adv) == []
    adv["spec"]["aggregationLength"] = 33
    assert any("maximum" in e for e in admission_errors(crd_for(adv), adv))


# Where the API server and `metalloid check` disagree today; each entry is a
# bug to fix in one of them (strict xfail: the test says so once fixed).
KNOWN_DISAGREEMENTS: dict[str, str] = {}


@pytest.mark.parametrize(
    "address",
    [
        pytest.param(a, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DISAGREEMENTS[a]))
        if a in KNOWN_DISAGREEMENTS
        else a
        for a in VALID_ADDRESSES + [m[1] for m in MALFORMED_ADDRESSES]
    ],
)
def test_crd_and_metalloid_check_agree_on_addresses(address: str) -> None:
    """What the API server accepts, `metalloid check` accepts, and the reverse:
    a pool never passes one and fails the other (IPv6 order aside, which CEL
    cannot compare and only the controller checks)."""
    parsing = pytest.importorskip("supervisor.config.parsing")
    pool = with_spec(runbook_pool(), addresses=[address])
    _config, diagnostics = parsing.parse_objects([pool])
    metalloid_ok = not any(d.is_error for d in diagnostics)
    crd_ok = admission_errors(crd_for(pool), pool) == []
    assert crd_ok == metalloid_ok, (address, [str(d) for d in diagnostics])


def test_metalloid_watches_and_may_read_every_config_kind_it_ships() -> None:
    """A kind with a CRD but no watch would be kept in the cluster yet missing
    from the Config (a BGPPeer's bfdProfile would look dangling)."""
    from supervisor.kubernetes import kinds

    watched = {k.kind: k for k in kinds.WATCHED}
    for kind, crd_name in CRD_NAMES.items():
        assert kind in watched and watched[kind].plural == crd_name.split(".")[0], kind
        assert kind in kinds.CONFIG_KINDS
    roles = [o for o in kustomize(".") if o["kind"] == "Role" and o["metadata"]["name"].startswith("metalloid:")]
    for role in roles:
        readable = {r for rule in role["rules"] if "metallb.io" in rule["apiGroups"] and "list" in rule["verbs"]
                    for r in rule["resources"]}
        assert {name.split(".")[0] for name in CRD_NAMES.values()} <= readable, role["metadata"]["name"]
