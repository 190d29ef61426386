"""Every error rule of `metalloid check` on MetalLB's kinds is enforced by the
CRDs (schema or CEL), or named below as an exception with the reason.

The rules are derived from the code, not listed by hand: every `error(...)`
call of the modules that parse and validate MetalLB's kinds, and every
problem `addresses.parse_address_range` returns, is a rule. Each must match
exactly one entry of RULES (by function and a fragment of its message
template), so a new rule fails this test until it is classified. An entry
with a sample proves both halves: `check` rejects the sample with that rule's
message, and the API server (offline: schema + CEL, see deploy_support)
rejects it too. The samples are one-field edits of objects both accept.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plugins.bgp import validation as bgp_validation
from supervisor.config.parsing import parse_objects
from supervisor.config.validation import validate
from tests.deploy_support import REPO, Obj, admission_errors, find, kustomize

# Where check's rules for MetalLB's kinds live. core_kinds.py (Service, Node,
# EndpointSlice) is left out: those are Kubernetes' own kinds, not our CRDs.
RULE_MODULES = (
    "supervisor/config/parsing.py",
    "supervisor/config/bgp_kinds.py",
    "supervisor/config/selectors.py",
    "supervisor/config/fields.py",
    "supervisor/config/validation.py",
    "plugins/bgp/validation.py",
)
# Functions returning a problem as a string that their caller reports.
REASON_FUNCTIONS = {"supervisor/config/addresses.py": ("parse_address_range", "_parse_cidr", "_parse_dash_range")}
# Calls that pass a message through rather than state a rule.
WRAPPERS = {("supervisor/config/fields.py", "error")}


@dataclass(frozen=True, slots=True)
class Site:
    module: str
    function: str
    line: int
    template: str  # the message with every {} placeholder left as "{}"


def _template(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        left, right = _template(node.left), _template(node.right)
        return None if left is None or right is None else left + right
    return None


def rule_sites() -> list[Site]:
    sites: list[Site] = []
    for module in RULE_MODULES:
        for fn in ast.walk(ast.parse((REPO / module).read_text())):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for call in ast.walk(fn):
                if not isinstance(call, ast.Call) or not call.args:
                    continue
                name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
                if name != "error" or (module, fn.name) in WRAPPERS:
                    continue
                template = _template(call.args[-1])
                assert template is not None, f"{module}:{call.lineno}: an error message that is not a literal"
                sites.append(Site(module, fn.name, call.lineno, template))
    for module, functions in REASON_FUNCTIONS.items():
        for fn in ast.walk(ast.parse((REPO / module).read_text())):
            if isinstance(fn, ast.FunctionDef) and fn.name in functions:
                for ret in ast.walk(fn):
                    if isinstance(ret, ast.Return) and ret.value is not None:
                        template = _template(ret.value)
                        if template:
                            sites.append(Site(module, fn.name, ret.lineno, template))
    return sites


# -- valid bases and one-field edits ---------------------------------------------

META = {"name": "x", "namespace": "metallb-system"}
POOL: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": META,
             "spec": {"addresses": ["10.0.10.0/24"], "serviceAllocation": {
                 "namespaceSelectors": [{"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}]}}}
L2: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": META,
           "spec": {"ipAddressPools": ["x"], "nodeSelectors": [{"matchLabels": {"a": "b"}}],
                    "preferredNodeSelectors": [{"weight": 10, "preference": {"matchLabels": {"zone": "a"}}}]}}
ADV: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": META,
            "spec": {"ipAddressPools": ["x"], "communities": ["65535:65282"], "aggregationLength": 32}}
PEER: Obj = {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": META,
             "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "holdTime": "90s"}}
COMMUNITY: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": META,
                  "spec": {"communities": [{"name": "vpn", "value": "1234:1"}]}}
BASES = (POOL, L2, ADV, PEER, COMMUNITY)

Edit = Callable[[Obj], None]


def edit(base: Obj, change: Edit) -> Obj:
    out = copy.deepcopy(base)
    change(out)
    return out


def spec(**fields: Any) -> Edit:
    """Set (or, with None, remove) spec fields."""
    def change(obj: Obj) -> None:
        for key, value in fields.items():
            if value is None:
                obj["spec"].pop(key, None)
            else:
                obj["spec"][key] = value
    return change


def expression(**fields: Any) -> Edit:
    def change(obj: Obj) -> None:
        obj["spec"]["serviceAllocation"]["namespaceSelectors"][0]["matchExpressions"][0] = fields
    return change


def address(text: str) -> Edit:
    return spec(addresses=["10.0.20.0/24", text])


@dataclass(frozen=True, slots=True)
class Rule:
    function: str
    fragment: str  # a piece of the message template that names this rule
    samples: tuple[Obj, ...] = ()  # each violates the rule: check and the CRDs both reject it
    exception: str = ""  # why the CRDs cannot enforce it (then there are no samples)
    says: str = ""  # what check's message for a sample contains; default: the fragment's longest literal piece

    @property
    def evidence(self) -> str:
        return self.says or max(self.fragment.split("{}"), key=len).strip()


def enforced(function: str, fragment: str, *samples: Obj, says: str = "") -> Rule:
    return Rule(function, fragment, samples=samples, says=says)


def not_enforced(function: str, fragment: str, reason: str) -> Rule:
    return Rule(function, fragment, exception=reason)


CROSS_OBJECT = "needs other objects; a CRD's rules see one object (the controller reports it: InvalidConfiguration)"

RULES: tuple[Rule, ...] = (
    # parsing.py: documents and metadata
    not_enforced("_config_of", "a second Settings object", "Settings is metalloid's file-only kind, no CRD"),
    not_enforced("_parse_object", "document is {}, not an object", "YAML files only; the API takes objects"),
    not_enforced("_parse_object", "object without a string apiVersion and kind",
                 "the API server requires apiVersion and kind of every object itself"),
    not_enforced("_parse_object", "is not supported for",
                 "the API server serves only the versions a CRD lists (BGPAdvertisement v1beta2 does not exist)"),
    not_enforced("read_meta", "metadata is missing", "the API server requires metadata.name itself"),
    not_enforced("read_meta", "metadata.name is missing", "the API server requires metadata.name itself"),
    # parsing.py: IPAddressPool
    enforced("_pool", "an IPAddressPool needs spec.addresses", edit(POOL, lambda p: p.pop("spec"))),
    enforced("_pool", "spec.addresses is empty", edit(POOL, spec(addresses=[])), edit(POOL, spec(addresses=None))),
    # The reasons of addresses.py (below), prefixed with the entry's path.
    enforced("_pool", "{}: {}", edit(POOL, address("firstpool")), says="spec.addresses[1]: 'firstpool'"),
    # parsing.py: L2Advertisement
    enforced("_interfaces", "cannot be a Linux interface name",
             edit(L2, spec(interfaces=["a-very-long-interface0"])), edit(L2, spec(interfaces=["eth 0"]))),
    enforced("_preferred_node_selectors", "weight is missing",
             edit(L2, spec(preferredNodeSelectors=[{"preference": {}}]))),
    enforced("_preferred_node_selectors", "preference is missing",
             edit(L2, spec(preferredNodeSelectors=[{"weight": 5}]))),
    # parsing.py: BGPPeer
    enforced("_duration", "is not a duration", edit(PEER, spec(holdTime="90 seconds"))),
    enforced("_peer", "a BGPPeer needs spec.myASN", edit(PEER, lambda p: p.pop("spec"))),
    enforced("_peer", "spec.myASN is missing", edit(PEER, spec(myASN=None))),
    enforced("_peer", "spec.peerASN is missing", edit(PEER, spec(peerASN=None))),
    enforced("_peer", "spec.peerASN: 0 is not an AS number", edit(PEER, spec(peerASN=0))),
    enforced("_peer", "spec.peerASN and spec.dynamicASN exclude", edit(PEER, spec(dynamicASN="internal"))),
    enforced("_peer", "spec.sourceAddress: {} is not an IP", edit(PEER, spec(sourceAddress="10.0.0.256"))),
    enforced("_peer", "spec.routerID: {} is not an IP", edit(PEER, spec(routerID="router-1"))),
    enforced("_peer", "spec.holdTime: {} is too short", edit(PEER, spec(holdTime="2s"))),
    enforced("_peer", "is longer than spec.holdTime", edit(PEER, spec(keepaliveTime="100s"))),
    enforced("_peer", "spec.connectTime: {} must be a whole number",
             edit(PEER, spec(connectTime="1500ms")), edit(PEER, spec(connectTime="20h"))),
    enforced("_peer", "spec.ebgpMultiHop is for eBGP", edit(PEER, spec(peerASN=64500, ebgpMultiHop=True))),
    enforced("_peer", "spec.password and spec.passwordSecret exclude",
             edit(PEER, spec(password="pw", passwordSecret={"name": "s"}))),
    enforced("_dynamic_asn", "is not a mode", edit(PEER, spec(peerASN=None, dynamicASN="any"))),
    enforced("_peer_address", "spec.peerAddress: {} is not an IP", edit(PEER, spec(peerAddress="10.0.0.256"))),
    enforced("_peer_address", "spec.peerAddress is missing", edit(PEER, spec(peerAddress=None))),
    enforced("_peer_address", "spec.peerAddress and spec.interface exclude", edit(PEER, spec(interface="eth1"))),
    # parsing.py: BGPAdvertisement
    enforced("_bgp_advertisement", "spec.serviceSelectors only works with the default",
             edit(ADV, spec(serviceSelectors=[{"matchLabels": {"a": "b"}}], aggregationLength=24))),
    not_enforced("_settings", "is not longer than intervalSeconds", "Settings is metalloid's file-only kind, no CRD"),
    not_enforced("_interfaces_to_exclude", "is not a valid regular expression",
                 "Settings is metalloid's file-only kind, no CRD"),
    # bgp_kinds.py
    enforced("advertisement_communities", "is not a BGP community ({}); write {}, or",
             edit(ADV, spec(communities=["65536:1"])), edit(ADV, spec(communities=["large:1:2:x"]))),
    enforced("parse_community", "is not a BGP community ({}); write {}",
             edit(COMMUNITY, spec(communities=[{"name": "vpn", "value": "vpn-only"}])),
             edit(COMMUNITY, spec(communities=[{"name": "vpn"}]))),
    # selectors.py
    enforced("_parse_requirement", "a match expression needs a non-empty key",
             edit(POOL, expression(operator="Exists")), edit(POOL, expression(key="", operator="Exists"))),
    enforced("_parse_requirement", "needs an operator", edit(POOL, expression(key="team"))),
    enforced("_parse_requirement", "unknown operator", edit(POOL, expression(key="team", operator="in",
                                                                            values=["a"]))),
    enforced("_parse_requirement", "needs at least one value", edit(POOL, expression(key="team", operator="In"))),
    enforced("_parse_requirement", "takes no values",
             edit(POOL, expression(key="team", operator="Exists", values=["a"]))),
    # fields.py: types and ranges
    enforced("_wrong", "expected {}, got {}", edit(POOL, spec(autoAssign="yes")), edit(PEER, spec(myASN="64500"))),
    enforced("get_int", "is out of range", edit(ADV, spec(aggregationLength=33)), edit(PEER, spec(peerPort=70000))),
    not_enforced("get_number", "is out of range; use at least", "only Settings has fractional numbers; no CRD"),
    enforced("get_maps", "expected a mapping", edit(L2, spec(nodeSelectors=["kubernetes.io/hostname=n1"]))),
    enforced("get_strs", "expected a string, got {}", edit(POOL, spec(addresses=[10]))),
    not_enforced("get_str_map", "must be a string; quote it",
                 "only YAML files have non-string keys (1: a); JSON, so the API, has string keys only"),
    enforced("get_str_map", "expected a string, got {}; quote it",
             edit(L2, spec(nodeSelectors=[{"matchLabels": {"rack": 1}}]))),
    # validation.py
    not_enforced("_duplicates", "a second {} named",
                 "the API server keeps one object per name and namespace (a second apply updates the first)"),
    not_enforced("_overlaps", "overlaps", CROSS_OBJECT + "; within one pool, CEL cannot compare every pair of "
                                                         "IPv6 ranges within the cost limit"),
    not_enforced("_aggregation_lengths", "is shorter than prefix", CROSS_OBJECT + " (the pool's prefixes)"),
    not_enforced("_bgp_references", "is defined twice", CROSS_OBJECT + " (aliases of every Community)"),
    # plugins/bgp/validation.py: the plugin re-checks Configs built in code
    not_enforced("validate", "is not a valid AS number",
                 "parsing rejects these values first (get_int's range, enforced above); this guards Configs "
                 "built in code"),
    not_enforced("validate", "is not allowed by BGP",
                 "parsing's holdTime rule (enforced above) rejects it first; this guards Configs built in code"),
    not_enforced("validate", "make it at most a third of holdTime",
                 "parsing's keepaliveTime rule (enforced above) rejects it first; this guards Configs built in code"),
    not_enforced("validate", "is shorter than the /{} prefix of pool", CROSS_OBJECT + " (the pool's prefixes)"),
    not_enforced("local_pref_conflicts", "differs from the {} of BGPAdvertisement",
                 CROSS_OBJECT + " (the other advertisements of the pool, their peers and nodes)"),
    # addresses.py: reasons _pool reports as "spec.addresses[i]: REASON"
    enforced("parse_address_range", "empty address entry", edit(POOL, address(""))),
    enforced("parse_address_range", "is not an IP address, a CIDR or a range",
             edit(POOL, address("firstpool")), edit(POOL, address("10.0.10.010"))),
    enforced("_parse_cidr", "is not a valid CIDR", edit(POOL, address("10.0.10.0/33"))),
    enforced("_parse_dash_range", "is not an IP address; write FIRST-LAST", edit(POOL, address("10.0.0.1-10.0.0.x"))),
    enforced("_parse_dash_range", "mixes IPv", edit(POOL, address("10.0.10.1-fd00::1"))),
    # IPv4 only: CEL has no IPv6 comparison; the controller reports a reversed IPv6 range.
    enforced("_parse_dash_range", "is reversed", edit(POOL, address("10.0.10.99-10.0.10.10"))),
)


def matching(site: Site) -> list[Rule]:
    return [r for r in RULES if r.function == site.function and r.fragment in site.template]


def test_every_rule_of_check_is_classified_exactly_once() -> None:
    sites = rule_sites()
    assert len(sites) > 40, "the scan lost the rules"
    problems = [f"{s.module}:{s.line} {s.function}: {s.template!r} matches {len(matching(s))} entries"
                for s in sites if len(matching(s)) != 1]
    assert problems == [], "classify each rule in RULES (a sample or an exception):\n" + "\n".join(problems)
    used = {id(r) for s in sites for r in matching(s)}
    stale = [f"{r.function}: {r.fragment!r}" for r in RULES if id(r) not in used]
    assert stale == [], f"entries matching no rule of check any more: {stale}"


def check_errors(obj: Obj) -> list[str]:
    config, diagnostics = parse_objects([obj])
    found = diagnostics + validate(config) + bgp_validation.validate(config)
    return [d.message for d in found if d.is_error]


CRDS = {"IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements", "BGPPeer": "bgppeers",
        "BGPAdvertisement": "bgpadvertisements", "Community": "communities"}


def crd_errors(obj: Obj) -> list[str]:
    crd = find(kustomize("."), "CustomResourceDefinition", f"{CRDS[obj['kind']]}.metallb.io")
    return admission_errors(crd, obj)


@pytest.mark.parametrize("base", BASES, ids=[b["kind"] for b in BASES])
def test_the_bases_are_valid_for_check_and_the_crds(base: Obj) -> None:
    assert check_errors(base) == []
    assert crd_errors(base) == []


SAMPLES = [(rule, sample) for rule in RULES for sample in rule.samples]


@pytest.mark.parametrize(("rule", "sample"), SAMPLES,
                         ids=[f"{r.function}:{r.fragment[:40]}:{i}" for i, (r, _) in enumerate(SAMPLES)])
def test_a_rule_of_check_is_enforced_by_the_crd(rule: Rule, sample: Obj) -> None:
    errors = check_errors(sample)
    assert len(rule.evidence) > 5 and any(rule.evidence in e for e in errors), (rule.evidence, errors)
    assert crd_errors(sample), f"the CRD accepts what check rejects ({rule.fragment!r}): {sample['spec']}"


def test_every_entry_has_samples_or_a_reason() -> None:
    for rule in RULES:
        assert bool(rule.samples) != bool(rule.exception), rule


def test_the_rule_modules_exist() -> None:
    for module in (*RULE_MODULES, *REASON_FUNCTIONS):
        assert Path(REPO / module).is_file(), module
