"""Fields of MetalLB's API that metalloid keeps but does not act on: each one
is declared by the CRDs (not pruned), parsed without error, recorded on the
Config and reported by `check` naming the object and the field; a typo is
still an unknown-field warning. Also the BGP side kinds (BFDProfile,
Community) and BGPPeer v1beta2's alternatives (dynamicASN, interface)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from supervisor.config.diagnostics import Diagnostic
from supervisor.config.kept_fields import KEPT_NOT_ACTED_ON, WHOLE_OBJECT, KeptField
from supervisor.config.model import Config
from supervisor.config.parsing import parse_objects
from supervisor.config.validation import validate
from tests.deploy_support import REPO, Obj, crd_version_schema, find, kustomize

BASES: dict[str, Obj] = {
    "L2Advertisement": {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "spec": {}},
    "BGPAdvertisement": {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "spec": {}},
    "BGPPeer": {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
                "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}},
    "BFDProfile": {"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile", "spec": {"receiveInterval": 380}},
}
SAMPLES: dict[str, Any] = {
    "spec.serviceSelectors": [{"matchLabels": {"tier": "frontend"}}],
    "spec.preferredNodeSelectors": [{"weight": 50, "preference": {"matchLabels": {"zone": "primary"}}}],
    "spec.bfdProfile": "fast",
    "spec.localASN": 65410,
    "spec.interface": "eth1",
    "spec.connectTime": "120s",
    "spec.passwordSecret": {"name": "bgp-password"},
    "spec.enableGracefulRestart": True,
    "spec.disableMP": True,
    "spec.dualStackAddressFamily": True,
}


def object_setting(entry: KeptField) -> Obj:
    obj = copy.deepcopy(BASES[entry.kind])
    obj["metadata"] = {"name": "obj", "namespace": "metallb-system"}
    if entry.path != WHOLE_OBJECT:
        obj["spec"][entry.key] = SAMPLES[entry.path]
    if entry.path == "spec.interface":
        del obj["spec"]["peerAddress"]  # interface replaces it
    return obj


def parsed(*objects: Obj) -> tuple[Config, list[Diagnostic]]:
    config, diagnostics = parse_objects(list(objects))
    return config, diagnostics + validate(config)


@pytest.mark.parametrize("entry", KEPT_NOT_ACTED_ON, ids=[f"{e.kind}.{e.path}" for e in KEPT_NOT_ACTED_ON])
def test_a_kept_field_is_kept_recorded_and_reported(entry: KeptField) -> None:
    obj = object_setting(entry)
    config, diagnostics = parse_objects([obj])
    assert not [d for d in diagnostics if d.is_error], [str(d) for d in diagnostics]
    (record,) = [f for f in config.inert_fields if f.path == entry.path]
    assert (record.kind, record.namespace, record.name) == (entry.kind, "metallb-system", "obj")
    (warned,) = [d for d in diagnostics if d.message == record.message]
    assert (warned.kind, warned.name) == (entry.kind, "obj")
    assert "does not act on" in warned.message and entry.metallb_effect in warned.message
    if entry.path != WHOLE_OBJECT:
        assert entry.path in warned.message
    assert not [d for d in diagnostics if "unknown field" in d.message]


@pytest.mark.parametrize("entry", [KeptField(kind="BGPPeer", path="spec.connectTime", metallb_effect="(stand-in)"),
                                   KeptField(kind="BFDProfile", path=WHOLE_OBJECT, metallb_effect="(stand-in)")],
                         ids=["field", "whole-kind"])  # fmt: skip
def test_the_reporting_works_whichever_fields_are_listed(entry: KeptField, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list is empty today; the recording and the check warning stay tested with stand-in entries."""
    from supervisor.config import kept_fields

    monkeypatch.setattr(kept_fields, "KEPT_NOT_ACTED_ON", (entry,))
    test_a_kept_field_is_kept_recorded_and_reported(entry)


@pytest.mark.parametrize("entry", KEPT_NOT_ACTED_ON, ids=[f"{e.kind}.{e.path}" for e in KEPT_NOT_ACTED_ON])
def test_the_crd_declares_every_kept_field(entry: KeptField) -> None:
    """Kept means the API server does not prune it: the schema has the field."""
    plural = {"L2Advertisement": "l2advertisements", "BGPAdvertisement": "bgpadvertisements",
              "BGPPeer": "bgppeers", "BFDProfile": "bfdprofiles"}[entry.kind]
    crd = find(kustomize("."), "CustomResourceDefinition", f"{plural}.metallb.io")
    version = BASES[entry.kind]["apiVersion"].partition("/")[2]
    spec = crd_version_schema(crd, version)["properties"]["spec"]
    if entry.path == WHOLE_OBJECT:
        assert spec["properties"]
    else:
        assert entry.key in spec["properties"]


def test_the_list_is_documented() -> None:
    text = (REPO / "docs" / "configuring.md").read_text()
    section = text.split("## Fields metalloid keeps but does not act on", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| (\w+) \| `([\w.]+)` \|", section, re.M))
    assert rows == {(e.kind, e.path) for e in KEPT_NOT_ACTED_ON}


def test_a_typo_is_still_an_unknown_field_warning() -> None:
    obj = copy.deepcopy(BASES["BGPAdvertisement"])
    obj["metadata"] = {"name": "obj", "namespace": "metallb-system"}
    obj["spec"]["serviceSelector"] = SAMPLES["spec.serviceSelectors"]
    config, diagnostics = parse_objects([obj])
    (warned,) = [d for d in diagnostics if "unknown field" in d.message]
    assert "spec.serviceSelector is ignored; did you mean serviceSelectors?" in warned.message
    assert config.inert_fields == ()
    assert config.bgp_advertisements[0].service_selectors == ()


def test_bgp_advertisement_service_selectors_are_acted_on_not_kept() -> None:
    """Issue 17: parsed into the model, no warning, no inert record; a malformed one is an error."""
    obj = copy.deepcopy(BASES["BGPAdvertisement"])
    obj["metadata"] = {"name": "obj", "namespace": "metallb-system"}
    obj["spec"]["serviceSelectors"] = SAMPLES["spec.serviceSelectors"]
    config, diagnostics = parse_objects([obj])
    assert diagnostics == [] and config.inert_fields == ()
    (selector,) = config.bgp_advertisements[0].service_selectors
    assert selector.matches({"tier": "frontend"}) and not selector.matches({"tier": "backend"})
    obj["spec"]["serviceSelectors"] = [{"matchExpressions": [{"key": "a", "operator": "In"}]}]
    _config, diagnostics = parse_objects([obj])
    assert any(d.is_error and "operator In on 'a' needs at least one value" in d.message for d in diagnostics)


def test_a_malformed_preference_is_an_error_as_in_metallb() -> None:
    """L2Advertisement.preferredNodeSelectors (acted on since issue 11): MetalLB's bounds and selector rules."""
    obj = copy.deepcopy(BASES["L2Advertisement"])
    obj["metadata"] = {"name": "obj", "namespace": "metallb-system"}
    obj["spec"]["preferredNodeSelectors"] = copy.deepcopy(SAMPLES["spec.preferredNodeSelectors"])
    obj["spec"]["preferredNodeSelectors"][0]["weight"] = 0
    obj["spec"]["preferredNodeSelectors"][0]["preference"] = {"matchExpressions": [{"key": "a", "operator": "In"}]}
    _config, diagnostics = parse_objects([obj])
    errors = [d.message for d in diagnostics if d.is_error]
    assert any("weight: 0 is out of range" in e for e in errors), errors
    assert any("operator In on 'a' needs at least one value" in e for e in errors), errors


PEER: Obj = {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "r1"},
             "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}}


def peer(**changes: Any) -> Obj:
    out = copy.deepcopy(PEER)
    out["spec"].update(changes)
    out["spec"] = {k: v for k, v in out["spec"].items() if v is not None}
    return out


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"peerASN": None, "dynamicASN": "external"}, None),
        ({"peerAddress": None, "interface": "eth1"}, None),
        ({"peerPort": 0}, None),
        ({"routerID": "fd00::1"}, None),
        ({"peerASN": None}, "spec.peerASN is missing"),
        ({"dynamicASN": "internal"}, "spec.peerASN and spec.dynamicASN exclude each other"),
        ({"peerASN": None, "dynamicASN": "any"}, 'spec.dynamicASN: "any" is not a mode'),
        ({"peerAddress": None}, "spec.peerAddress is missing"),
        ({"interface": "eth1"}, "spec.peerAddress and spec.interface exclude each other"),
        ({"password": "pw", "passwordSecret": {"name": "s"}}, "spec.password and spec.passwordSecret exclude"),
        ({"peerASN": 64500, "ebgpMultiHop": True}, "spec.ebgpMultiHop is for eBGP"),
        ({"connectTime": "1500ms"}, "spec.connectTime: 1500ms must be a whole number of seconds"),
        ({"routerID": "router-1"}, 'spec.routerID: "router-1" is not an IP address'),
        ({"myASN": 0}, "spec.myASN: 0 is out of range"),
    ],
    ids=["dynamic-asn", "interface", "port-zero-is-179", "router-id-v6", "no-asn", "both-asns", "bad-dynamic-asn",
         "no-address", "both-addresses", "both-passwords", "multihop-ibgp", "connect-time-fraction",
         "router-id-not-ip", "my-asn-zero"],
)
def test_bgp_peer_v1beta2_rules_are_metallbs(changes: Obj, fragment: str | None) -> None:
    config, diagnostics = parse_objects([peer(**changes)])
    errors = [d.message for d in diagnostics if d.is_error]
    if fragment is None:
        assert errors == []
        (parsed_peer,) = config.bgp_peers
        assert parsed_peer.peer_port == 179 or "peerPort" not in changes
    else:
        assert any(fragment in e for e in errors), errors
        assert config.bgp_peers == ()


def test_v1beta2_only_fields_in_a_v1beta1_peer_are_reported_as_pruned() -> None:
    old = peer(vrf="red", localASN=65410)
    old["apiVersion"] = "metallb.io/v1beta1"
    _config, diagnostics = parse_objects([old])
    warned = sorted(d.message for d in diagnostics if "exists only in metallb.io/v1beta2" in d.message)
    assert [m.split(" ")[0] for m in warned] == ["spec.localASN", "spec.vrf"]


def test_bfd_profiles_and_communities_are_parsed_and_cross_checked() -> None:
    objects: list[Obj] = [
        {"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile", "metadata": {"name": "fast"},
         "spec": {"receiveInterval": 380, "transmitInterval": 270, "echoMode": True}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": "c"},
         "spec": {"communities": [{"name": "vpn-only", "value": "1234:1"}, {"name": "big", "value": "large:1:2:3"}]}},
        peer(bfdProfile="fast"),
        {**peer(bfdProfile="slow"), "metadata": {"name": "r2"}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "a"},
         "spec": {"communities": ["vpn-only", "65535:65282", "no-such-alias"]}},
    ]
    config, diagnostics = parsed(*objects)
    (profile,) = config.bfd_profiles
    assert (profile.receive_interval, profile.transmit_interval, profile.echo_mode) == (380, 270, True)
    (community,) = config.communities
    assert [(a.name, a.value) for a in community.aliases] == [("vpn-only", "1234:1"), ("big", "large:1:2:3")]
    messages = [str(d) for d in diagnostics]
    assert not [d for d in diagnostics if d.is_error], messages
    assert any("BGPPeer/r2: warning: spec.bfdProfile names BFDProfile 'slow', which does not exist" in m
               for m in messages), messages
    assert any("alias 'no-such-alias', which no Community defines" in m for m in messages), messages
    assert not any("vpn-only" in m for m in messages)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("65536:1", "a part is above 65535"), ("no:export", "it is not two 16-bit numbers"),
     ("large:4294967296:1:2", "a part is above 4294967295"), ("big:1:2:3", "it is not two 16-bit numbers")],
)
def test_community_values_are_checked_as_metallb_does(value: str, fragment: str) -> None:
    community: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": "c"},
                      "spec": {"communities": [{"name": "x", "value": value}]}}
    advertisement: Obj = {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "a"},
                          "spec": {"communities": [value]}}
    for obj in (community, advertisement):
        _config, diagnostics = parse_objects([obj])
        assert any(d.is_error and fragment in d.message for d in diagnostics), [str(d) for d in diagnostics]


def test_an_alias_defined_twice_is_an_error() -> None:
    def community(name: str) -> Obj:
        return {"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": name},
                "spec": {"communities": [{"name": "vpn-only", "value": "1234:1"}]}}

    _config, diagnostics = parsed(community("a"), community("b"))
    (found,) = [d for d in diagnostics if d.is_error]
    assert (found.name, "alias 'vpn-only' is defined twice (also in Community/a)") == (
        "b", found.message.split(";")[0])


def test_the_bgp_stub_resolves_community_aliases() -> None:
    routes = pytest.importorskip("plugins.bgp.planning")
    config, _ = parse_objects([
        {"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": "c"},
         "spec": {"communities": [{"name": "vpn-only", "value": "1234:1"}]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "a"},
         "spec": {"communities": ["vpn-only", "65535:65282"]}},
    ])
    assert routes._communities(config, config.bgp_advertisements[0]) == ("1234:1", "65535:65282")
