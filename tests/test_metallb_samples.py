"""MetalLB's own sample configs apply to metalloid's CRDs with nothing pruned
or rejected, and `metalloid check` accepts them (warnings allowed).

The samples are MetalLB's configsamples/ and the YAML examples of its
documentation, copied as data into tests/fixtures/metallb-samples/ (see the
README there). Each metallb.io object is checked as the API server would on
`kubectl apply`: schema and CEL rules (deploy_support.admission_errors), and
structural pruning (deploy_support.pruned) must give back the object as
written. Objects of other kinds (a Deployment, FRR-K8s' FRRConfiguration) are
not ours and only go through `check`. The files are read with metalloid's
YAML loader, which reads scalars as Kubernetes does (`value: 1234:1` is a
string, not YAML 1.1's base-60 number 74041).

configsamples/ files are applied whole, so `check` takes each file as one
config; a documentation page shows alternatives (three `example`
L2Advertisements), so `check` takes each of its examples alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.config.diagnostics import Diagnostic
from supervisor.config.loading import load_config_files, load_documents
from supervisor.config.parsing import parse_documents
from supervisor.config.validation import validate
from supervisor.plugin_checks import plugin_validators
from tests.deploy_support import REPO, Obj, admission_errors, crd_version_schema, find, kustomize, pruned, pruned_paths

SAMPLES = REPO / "tests" / "fixtures" / "metallb-samples"
FILES = sorted(SAMPLES.glob("*.yaml"))

# Where metalloid and MetalLB disagree today, each with the reason. Strict
# xfail: the test says so when the disagreement is gone.
KNOWN_DIFFERENCES: dict[tuple[str | int, ...], str] = {}


def documents(path: Path) -> list[Obj]:
    docs, problems = load_documents(str(path))
    assert problems == []
    return [json.loads(json.dumps(d.body)) for d in docs if d.body]


def metallb_objects() -> list[tuple[str, int, Obj]]:
    return [(p.name, i, d) for p in FILES for i, d in enumerate(documents(p))
            if str(d.get("apiVersion", "")).startswith("metallb.io/")]


def marked(key: tuple[str | int, ...], *values: object) -> object:
    if key in KNOWN_DIFFERENCES:
        return pytest.param(*values, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[key]))
    return pytest.param(*values)


def crd_for(obj: Obj) -> Obj:
    plural = {"IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements", "BGPPeer": "bgppeers",
              "BGPAdvertisement": "bgpadvertisements", "BFDProfile": "bfdprofiles",
              "Community": "communities"}[obj["kind"]]
    return find(kustomize("."), "CustomResourceDefinition", f"{plural}.metallb.io")


def test_the_samples_cover_every_metallb_config_kind_and_both_peer_versions() -> None:
    objects = metallb_objects()
    assert len(FILES) >= 20 and len(objects) >= 60
    assert {o["kind"] for _, _, o in objects} == {
        "IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "BFDProfile", "Community"}
    # Fields the issue names: they must be in the samples for this test to mean anything.
    specs = [o.get("spec") or {} for _, _, o in objects]
    for field in ("serviceSelectors", "preferredNodeSelectors", "passwordSecret", "connectTime", "localASN",
                  "enableGracefulRestart", "vrf", "interfaces", "serviceAllocation"):
        assert any(field in s for s in specs), field


@pytest.mark.parametrize(
    ("name", "index", "obj"),
    [marked((n, i), n, i, o) for n, i, o in metallb_objects()],
    ids=[f"{n}#{i}:{o['kind']}" for n, i, o in metallb_objects()],
)
def test_a_sample_applies_to_the_crds_unchanged(name: str, index: int, obj: Obj) -> None:
    crd = crd_for(obj)
    assert admission_errors(crd, obj) == [], f"{name} document {index} is rejected"
    schema = crd_version_schema(crd, obj["apiVersion"].partition("/")[2])
    assert pruned_paths(schema, obj) == [], f"{name} document {index} loses fields"
    assert pruned(schema, obj) == obj


def check_units() -> list[tuple[str, int | str]]:
    """(file, "all") for configsamples, (file, document index) for documentation pages."""
    units: list[tuple[str, int | str]] = []
    for path in FILES:
        if path.name.startswith("configsamples-"):
            units.append((path.name, "all"))
        else:
            docs, _ = load_documents(str(path))
            units.extend((path.name, d.index) for d in docs if d.body)
    return units


def check(name: str, which: int | str) -> list[Diagnostic]:
    path = str(SAMPLES / name)
    if which == "all":
        return load_config_files([path], validators=plugin_validators())[1]
    docs, _ = load_documents(path)
    config, diagnostics = parse_documents([d for d in docs if d.index == which])
    diagnostics += validate(config)
    for validator in plugin_validators():
        diagnostics += validator(config)
    return diagnostics


@pytest.mark.parametrize(("name", "which"), [marked((n, w, "check"), n, w) for n, w in check_units()],
                         ids=[f"{n}#{w}" for n, w in check_units()])
def test_metalloid_check_accepts_a_sample(name: str, which: int | str) -> None:
    errors = [str(d) for d in check(name, which) if d.is_error]
    assert errors == []


def test_the_documentations_preferred_node_selectors_are_acted_on() -> None:
    """The documentation's preferredNodeSelectors examples: parsed into the election's weights, no warning."""
    docs, _ = load_documents(str(SAMPLES / "website-configuration-advanced-l2.yaml"))
    weights: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for doc in docs:
        config, diagnostics = parse_documents([doc])
        assert not [d for d in diagnostics if "preferredNodeSelectors" in d.message], diagnostics
        assert config.inert_fields == ()
        for adv in config.l2_advertisements:
            if adv.preferred_node_selectors:
                weights[adv.name] = [(p.weight, dict(p.preference.match_labels)) for p in adv.preferred_node_selectors]
    assert weights == {
        "prefer-edge": [(100, {"node-role": "edge"})],
        "tiered-zones": [(100, {"zone": "primary"}), (50, {"zone": "secondary"})],
        "zone-boost": [(60, {"zone": "primary"})],
    }


def test_yaml_reads_a_community_as_kubernetes_does() -> None:
    (community,) = [o for o in documents(SAMPLES / "website-usage-example.yaml") if o["kind"] == "Community"]
    assert community["spec"]["communities"][0]["value"] == "1234:1"
