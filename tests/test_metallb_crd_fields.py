"""metalloid's CRDs against MetalLB's, field by field.

tests/fixtures/metallb-api/crd-fields.json lists, for each of MetalLB's nine
CRDs (config/crd/bases at the commit it names), its group, kind, scope, the
versions with served/storage/deprecated, and every schema path with its type,
its `required` list and its enum: facts read off MetalLB's CRDs, not their
text. This test holds metalloid's CRDs to them:

- the same nine kinds at the same versions, served and stored the same way;
- every path MetalLB declares is declared, with the same type, so the API
  server prunes nothing a MetalLB object sets;
- no `required` entry MetalLB does not have unless named in STRICTER with
  the reason (a rule of `metalloid check` the CRD enforces), and no enum
  narrower than MetalLB's;
- no path MetalLB does not have unless named in ADDED.

Value rules beyond MetalLB's schema (an operator enum where MetalLB takes
any string, CEL rules, length limits) are `check`'s rules enforced by the
API server; tests/test_check_rules_in_crds.py classifies those.

The samples test (test_metallb_samples.py) shows the same for MetalLB's own
examples; this one also covers fields no example sets (BFDProfile.minimumTtl,
BGPPeer.disableMP, the status kinds' fields).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy_support import REPO, Obj, kustomize

FIXTURE = REPO / "tests" / "fixtures" / "metallb-api" / "crd-fields.json"
METALLB: dict[str, Any] = json.loads(FIXTURE.read_text())

# (CRD, version, path): why metalloid's schema requires what MetalLB's does not.
STRICTER: dict[tuple[str, str, str], str] = {
    ("bgppeers.metallb.io", "v1beta1", "."): "a BGPPeer needs spec (check: 'a BGPPeer needs spec.myASN')",
    ("bgppeers.metallb.io", "v1beta2", "."): "a BGPPeer needs spec (check: 'a BGPPeer needs spec.myASN')",
    ("communities.metallb.io", "v1beta1", ".spec.communities[]"):
        "an alias without a value is no community (check: parse_community)",
}
# (CRD, version, path prefix): what metalloid's schema declares beyond MetalLB's.
ADDED: dict[tuple[str, str, str], str] = {
    ("ipaddresspools.metallb.io", "v1beta1", ".status.conditions"):
        "metalloid writes a Valid=False condition on a pool the configuration rejects",
}


def paths(schema: Obj, path: str = "") -> Iterator[tuple[str, Obj]]:
    yield path or ".", schema
    for name, sub in sorted((schema.get("properties") or {}).items()):
        yield from paths(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from paths(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from paths(schema["additionalProperties"], f"{path}{{}}")


def type_of(schema: Obj) -> str:
    return "int-or-string" if schema.get("x-kubernetes-int-or-string") else str(schema.get("type", ""))


def ours() -> dict[str, Obj]:
    return {c["metadata"]["name"]: c for c in kustomize(".")
            if c["kind"] == "CustomResourceDefinition" and c["spec"]["group"] == "metallb.io"}  # fmt: skip


VERSIONS = [(crd["name"], version["name"]) for crd in METALLB["crds"] for version in crd["versions"]]


def test_the_fixture_is_metallbs_nine_kinds() -> None:
    assert len(METALLB["commit"]) == 40
    assert sorted(c["kind"] for c in METALLB["crds"]) == sorted([
        "BFDProfile", "BGPAdvertisement", "BGPPeer", "Community", "ConfigurationState", "IPAddressPool",
        "L2Advertisement", "ServiceBGPStatus", "ServiceL2Status"])  # fmt: skip
    assert len(VERSIONS) == 10  # BGPPeer has two


def test_the_same_kinds_names_and_versions() -> None:
    mine = ours()
    assert set(mine) == {c["name"] for c in METALLB["crds"]}
    for theirs in METALLB["crds"]:
        spec = mine[theirs["name"]]["spec"]
        assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"], spec["scope"]) == (
            theirs["group"], theirs["kind"], theirs["plural"], theirs["scope"])
        got = {v["name"]: (v["served"], v["storage"], v.get("deprecated", False)) for v in spec["versions"]}
        assert got == {v["name"]: (v["served"], v["storage"], v["deprecated"]) for v in theirs["versions"]}


@pytest.mark.parametrize(("crd", "version"), VERSIONS, ids=[f"{c}/{v}" for c, v in VERSIONS])
def test_every_metallb_field_is_declared_with_its_type(crd: str, version: str) -> None:
    (theirs,) = [v for c in METALLB["crds"] if c["name"] == crd for v in c["versions"] if v["name"] == version]
    (schema,) = [v["schema"]["openAPIV3Schema"] for v in ours()[crd]["spec"]["versions"] if v["name"] == version]
    mine = dict(paths(schema))
    problems: list[str] = []
    for field in theirs["fields"]:
        path = field["path"]
        if path not in mine:
            problems.append(f"{path}: missing (the API server would prune it)")
            continue
        if type_of(mine[path]) != field["type"]:
            problems.append(f"{path}: type {type_of(mine[path])!r}, MetalLB {field['type']!r}")
        extra_required = set(mine[path].get("required") or ()) - set(field.get("required") or ())
        if extra_required and (crd, version, path) not in STRICTER:
            problems.append(f"{path}: requires {sorted(extra_required)}, MetalLB does not")
        if "enum" in mine[path] and "enum" in field and not set(field["enum"]) <= set(mine[path]["enum"]):
            problems.append(f"{path}: enum {mine[path]['enum']} is narrower than MetalLB's {field['enum']}")
    declared = {f["path"] for f in theirs["fields"]}
    for path in mine:
        if path not in declared and not any(
                c == crd and v == version and path.startswith(prefix) for c, v, prefix in ADDED):
            problems.append(f"{path}: not in MetalLB's schema")
    assert problems == []


def test_the_exceptions_are_still_needed() -> None:
    mine = ours()
    for (crd, version, path), reason in STRICTER.items():
        (schema,) = [v["schema"]["openAPIV3Schema"] for v in mine[crd]["spec"]["versions"] if v["name"] == version]
        assert dict(paths(schema))[path].get("required"), (crd, version, path, reason)
    for crd, version, prefix in ADDED:
        (schema,) = [v["schema"]["openAPIV3Schema"] for v in mine[crd]["spec"]["versions"] if v["name"] == version]
        assert any(p.startswith(prefix) for p in dict(paths(schema))), (crd, version, prefix)
